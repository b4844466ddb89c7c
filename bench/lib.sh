# bench/lib.sh: helpers the bench scripts (run.sh, backlog.sh, streams.sh)
# share; sourced, not run. They expect WORK (a scratch directory) to be set.

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- memory -------------------------------------------------------------------

rss_now() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# rss_begin PID: reset the kernel's peak-RSS counter (VmHWM) and poll VmRSS.
RSS_SAMPLER=
rss_begin() {
	RSS_PID=$1
	echo 5 >"/proc/$RSS_PID/clear_refs" 2>/dev/null || true
	: >"$WORK/rss.samples"
	(
		while kill -0 "$RSS_PID" 2>/dev/null; do
			rss_now "$RSS_PID" >>"$WORK/rss.samples"
			sleep 0.2
		done
	) &
	RSS_SAMPLER=$!
}

# rss_end: peak RSS in kB since rss_begin.
rss_end() {
	kill "$RSS_SAMPLER" 2>/dev/null || true
	wait "$RSS_SAMPLER" 2>/dev/null || true
	RSS_SAMPLER=
	local hwm smax
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$RSS_PID/status" 2>/dev/null || echo 0)
	smax=$(sort -n "$WORK/rss.samples" | tail -1)
	echo $((${hwm:-0} > ${smax:-0} ? ${hwm:-0} : ${smax:-0}))
}

# --- reports ------------------------------------------------------------------

num() { # integer with thousands separators, or the text as is
	case $1 in
	'' | n/a | *[!0-9.]*) echo "${1:-n/a}" ;;
	*) printf '%.0f' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' ;;
	esac
}
mib() { case $1 in '' | n/a | 0) echo n/a ;; *) awk -v k="$1" 'BEGIN {printf "%.0f", k/1024}' ;; esac }

# write_section NAME FILE OUT: put FILE (which starts with "<!-- NAME:begin" and
# ends with "<!-- NAME:end -->") into the report OUT in place of its old
# NAME section, or at the end if it has none.
write_section() {
	python3 - "$1" "$2" "$3" <<'PY'
import re, sys
name, sec, out = sys.argv[1], open(sys.argv[2]).read().rstrip("\n") + "\n", sys.argv[3]
try:
    doc = open(out).read()
except FileNotFoundError:
    doc = ""
pat = re.compile(r"<!-- " + re.escape(name) + r":begin.*?<!-- " + re.escape(name) + r":end -->\n?", re.S)
doc = pat.sub(lambda m: sec, doc) if pat.search(doc) else doc.rstrip("\n") + "\n\n" + sec
open(out, "w").write(doc)
PY
}

# js FILE KEY.PATH: a value from the last JSON line of FILE (warren-perf's
# summary line), or n/a.
js() {
	python3 - "$1" "$2" <<'PY'
import json, sys
try:
    v = json.loads([l for l in open(sys.argv[1]) if l.strip().startswith("{")][-1])
    for k in sys.argv[2].split("."):
        v = v[k]
    print(v)
except Exception:
    print("n/a")
PY
}

# write_subsection OUTER NAME HEADING FILE HEAD OUT: put FILE (which starts
# with "<!-- NAME:begin" and ends with "<!-- NAME:end -->") into the OUTER
# section of the report OUT in place of its old NAME subsection, leaving the
# rest of OUTER as it is; if OUTER has no NAME subsection, FILE replaces an
# unmarked table (as written before subsections) whose "### " line starts
# with HEADING, or goes at the end of OUTER. Once OUTER holds no unmarked
# table, its text outside the subsections becomes HEAD (a file: the heading
# and the words common to every subsection). A report without OUTER gets one
# at its end.
write_subsection() {
	python3 - "$@" <<'PY'
import re, sys
outer, name, heading, sec, head, out = sys.argv[1:7]
sec = open(sec).read().strip("\n") + "\n"
head = open(head).read().strip("\n") + "\n"
try:
    doc = open(out).read()
except FileNotFoundError:
    doc = ""
begin = "<!-- " + outer + ":begin"
end = "<!-- " + outer + ":end -->"
m = re.search(re.escape(begin) + r"[^\n]*\n(.*?)" + re.escape(end) + r"\n?", doc, re.S)
if not m:
    line = begin + " (bench/backlog.sh writes this section; bench/run.sh keeps it) -->\n"
    doc = doc.rstrip("\n") + ("\n\n" if doc.strip() else "") + line + head + "\n" + sec + end + "\n"
    open(out, "w").write(doc)
    sys.exit(0)
body = m.group(1)
subpat = re.compile(r"<!-- (" + re.escape(outer) + r"-[^:]+):begin.*?<!-- \1:end -->\n?", re.S)

def pieces(body):
    """[(kind, text)]: kind "sub" for a marked subsection, "text" otherwise."""
    out, pos = [], 0
    for s in subpat.finditer(body):
        out.append(("text", body[pos:s.start()]))
        out.append(("sub", s.group(0)))
        pos = s.end()
    out.append(("text", body[pos:]))
    return out

mine = re.compile(r"<!-- " + re.escape(name) + r":begin.*?<!-- " + re.escape(name) + r":end -->\n?", re.S)
parts = pieces(body)
if any(k == "sub" and mine.match(t) for k, t in parts):
    parts = [(k, sec if k == "sub" and mine.match(t) else t) for k, t in parts]
else:
    # an unmarked table: from its heading to the next heading, marker or "Commands:" line
    legacy = re.compile(r"^" + re.escape(heading) + r"[^\n]*\n.*?(?=^### |^<!-- |^Commands:|\Z)", re.S | re.M)
    for i, (k, t) in enumerate(parts):
        lm = legacy.search(t) if k == "text" else None
        if lm:
            parts[i:i + 1] = [("text", t[:lm.start()]), ("sub", sec), ("text", t[lm.end():])]
            break
    else:
        parts.append(("sub", sec))
subs = [t.strip("\n") + "\n" for k, t in parts if k == "sub"]
if any(re.search(r"^### ", t, re.M) for k, t in parts if k == "text"):
    # unmarked tables remain: keep their text, and the subsections where they are
    body = "".join(t if k == "text" else "\n" + t.strip("\n") + "\n\n" for k, t in parts)
    body = re.sub(r"\n{3,}", "\n\n", body).strip("\n") + "\n"
else:
    body = head + "".join("\n" + t for t in subs)
doc = doc[:m.start()] + doc[m.start():m.start(1)] + body + end + "\n" + doc[m.end():]
open(out, "w").write(doc)
PY
}

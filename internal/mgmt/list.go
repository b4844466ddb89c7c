package mgmt

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// obj is one object of a JSON response, as RabbitMQ shapes it.
type obj = map[string]any

// listOpts are RabbitMQ's list query parameters.
type listOpts struct {
	columns      [][]string // dotted paths, split
	sort         []string
	sortReverse  bool
	paged        bool
	page, size   int
	name         string
	nameRE       *regexp.Regexp
	disableStats bool
}

func (r *req) listOpts() (*listOpts, error) {
	q := r.URL.Query()
	o := &listOpts{name: q.Get("name"), page: 1, size: 100}
	if c := q.Get("columns"); c != "" {
		for _, col := range strings.Split(c, ",") {
			if col = strings.TrimSpace(col); col != "" {
				o.columns = append(o.columns, strings.Split(col, "."))
			}
		}
	}
	if s := q.Get("sort"); s != "" {
		o.sort = strings.Split(s, ".")
	}
	o.sortReverse = q.Get("sort_reverse") == "true"
	o.disableStats = q.Get("disable_stats") == "true"
	if o.name != "" && q.Get("use_regex") == "true" {
		re, err := regexp.Compile(o.name)
		if err != nil {
			return nil, badRequest("invalid regular expression: " + err.Error())
		}
		o.nameRE = re
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, badRequest(fmt.Sprintf("page must be a positive integer, got %q", p))
		}
		o.paged, o.page = true, n
	}
	if p := q.Get("page_size"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 500 {
			return nil, badRequest(fmt.Sprintf("page_size must be between 1 and 500, got %q", p))
		}
		o.size = n
	}
	return o, nil
}

// nameMatches applies the name (and use_regex) filter before objects are
// built, so a filtered list of 50,000 queues costs little.
func (o *listOpts) nameMatches(name string) bool {
	switch {
	case o.name == "":
		return true
	case o.nameRE != nil:
		return o.nameRE.MatchString(name)
	}
	return strings.Contains(name, o.name)
}

// lazyItem is a list item whose object is built only if it is sorted on a
// field sortKey cannot give, or lands on the page asked for: a page of 100
// of 50,000 queues builds 100 objects.
type lazyItem struct {
	// sortKey returns the value of a top-level field without building the
	// object, false if it cannot.
	sortKey func(field string) (any, bool)
	build   func() obj
	o       obj
}

func (it *lazyItem) get() obj {
	if it.o == nil {
		it.o = it.build()
	}
	return it.o
}

func (it *lazyItem) key(path []string) any {
	if len(path) == 1 && it.sortKey != nil {
		if v, ok := it.sortKey(path[0]); ok {
			return v
		}
	}
	return lookup(it.get(), path)
}

// writeList sorts, pages and projects built items as RabbitMQ does; total
// is the count before the name filter.
func (r *req) writeList(items []obj, o *listOpts, total int) error {
	lazy := make([]*lazyItem, len(items))
	for i, it := range items {
		lazy[i] = &lazyItem{o: it}
	}
	return r.writeLazy(lazy, o, total)
}

// writeLazy is writeList for items built on demand.
func (r *req) writeLazy(items []*lazyItem, o *listOpts, total int) error {
	if o.sort != nil {
		keys := make(map[*lazyItem]any, len(items))
		for _, it := range items {
			keys[it] = it.key(o.sort)
		}
		slices.SortStableFunc(items, func(a, b *lazyItem) int {
			c := compareValues(keys[a], keys[b])
			if o.sortReverse {
				return -c
			}
			return c
		})
	} else if o.sortReverse {
		slices.Reverse(items)
	}
	filtered := len(items)
	if o.paged {
		start := (o.page - 1) * o.size
		if start > len(items) && len(items) > 0 {
			return badRequest(fmt.Sprintf("page %d is beyond the last page", o.page))
		}
		items = items[min(start, len(items)):min(start+o.size, len(items))]
	}
	out := make([]obj, len(items))
	for i, it := range items {
		if p, ok := o.cheapProjection(it); ok {
			out[i] = p
			continue
		}
		out[i] = o.project(it.get())
		it.o = nil // let a long list's objects go once written
	}
	if !o.paged {
		return writeJSON(r.w, out)
	}
	pages := (filtered + o.size - 1) / o.size
	return writeJSON(r.w, obj{"filtered_count": filtered, "item_count": len(out), "items": out,
		"page": o.page, "page_count": pages, "page_size": o.size, "total_count": total})
}

// writeOne writes one object with the columns and disable_stats applied.
func (r *req) writeOne(it obj) error {
	o, err := r.listOpts()
	if err != nil {
		return err
	}
	return writeJSON(r.w, o.project(it))
}

func (o *listOpts) project(it obj) obj {
	if o.disableStats {
		it = withoutStats(it)
	}
	if o.columns == nil {
		return it
	}
	out := obj{}
	for _, path := range o.columns {
		v := lookup(it, path)
		if v == nil {
			if _, present := it[path[0]]; !present {
				continue
			}
		}
		m := out
		for _, p := range path[:len(path)-1] {
			sub, ok := m[p].(obj)
			if !ok {
				sub = obj{}
				m[p] = sub
			}
			m = sub
		}
		m[path[len(path)-1]] = v
	}
	return out
}

// cheapProjection builds the columns asked for from sortKey alone when it
// gives them all (rabbitmqadmin's list queues name messages, for instance).
func (o *listOpts) cheapProjection(it *lazyItem) (obj, bool) {
	if o.columns == nil || it.sortKey == nil || it.o != nil {
		return nil, false
	}
	out := obj{}
	for _, path := range o.columns {
		if len(path) != 1 {
			return nil, false
		}
		v, ok := it.sortKey(path[0])
		if !ok {
			return nil, false
		}
		out[path[0]] = v
	}
	return out, true
}

func withoutStats(it obj) obj {
	out := obj{}
	for k, v := range it {
		if k == "message_stats" || strings.HasSuffix(k, "_details") && k != "connection_details" && k != "channel_details" && k != "consumer_details" {
			continue
		}
		out[k] = v
	}
	return out
}

func lookup(it obj, path []string) any {
	var v any = it
	for _, p := range path {
		m, ok := v.(obj)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func compareValues(a, b any) int {
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	}
	fa, aNum := number(a)
	fb, bNum := number(b)
	if aNum && bNum {
		return cmp.Compare(fa, fb)
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

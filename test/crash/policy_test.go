package crash

import (
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/store"
)

// policyState opens a data directory in-process and describes its policies,
// operator policies, parameters and global parameters, and the effective
// arguments of its queues, one sorted line each.
func policyState(t *testing.T, dir string) []string {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(dir, store.Options{Logger: quiet})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	b, err := broker.New(broker.Config{Store: st, Logger: quiet})
	if err != nil {
		st.Close()
		t.Fatalf("broker on %s: %v", dir, err)
	}
	defer b.Close()
	var out []string
	for _, operator := range []bool{false, true} {
		for _, p := range b.Policies("", operator) {
			out = append(out, fmt.Sprintf("policy operator=%v %s %s %s %s %s %d", operator, p.VHost, p.Name, p.Pattern, p.ApplyTo, p.Definition, p.Priority))
		}
	}
	for _, p := range b.Parameters("") {
		out = append(out, fmt.Sprintf("parameter %s %s %s %s", p.VHost, p.Component, p.Name, p.Value))
	}
	for _, p := range b.GlobalParameters() {
		out = append(out, fmt.Sprintf("global %s %s", p.Name, p.Value))
	}
	for _, v := range b.VHosts() {
		for _, q := range v.Queues() {
			out = append(out, fmt.Sprintf("queue %s effective=%v", q.Name, q.EffectiveArgs()))
		}
	}
	slices.Sort(out)
	return out
}

// TestCrashPoliciesSurvive sets policies, operator policies, parameters and
// global parameters with the warren subcommands on the stopped data
// directory, starts the binary (the new limits trim the recovered queue, the
// excess dead-lettered), churns the metadata log past a compaction, and
// checks that all of it comes back after SIGTERM and after kill -9, with the
// policies still applied to the queue and the exchange.
func TestCrashPoliciesSurvive(t *testing.T) {
	bin := buildWarren(t)
	for _, how := range []string{"SIGTERM", "kill -9"} {
		t.Run(strings.ReplaceAll(how, " ", ""), func(t *testing.T) {
			w := newWarren(t, bin, t.TempDir())
			w.start()
			ch := dialChannel(t, w.URL())
			check(t, ch.Confirm(false))
			for _, x := range [][2]string{{"dlx", "fanout"}, {"ae", "fanout"}, {"src", "direct"}} {
				check(t, ch.ExchangeDeclare(x[0], x[1], true, false, false, false, nil))
			}
			for _, q := range [][2]string{{"jobs", ""}, {"dead", "dlx"}, {"unrouted", "ae"}} {
				_, err := ch.QueueDeclare(q[0], true, false, false, false, nil)
				check(t, err)
				if q[1] != "" {
					check(t, ch.QueueBind(q[0], "", q[1], false, nil))
				}
			}
			for i := 1; i <= 5; i++ {
				publishConfirmed(t, ch, "", "jobs", fmt.Sprintf("m%d", i))
			}
			w.stop()

			ctl := func(args ...string) {
				t.Helper()
				out, err := exec.Command(bin, append(args, "--data-dir", w.dir)...).CombinedOutput()
				if err != nil {
					t.Fatalf("warren %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			ctl("policies", "set", "--apply-to", "queues", "--priority", "1", "limit", "^jobs$", `{"max-length":3,"dead-letter-exchange":"dlx"}`)
			ctl("policies", "set", "--operator", "cap", "^jobs", `{"max-length":2}`)
			ctl("policies", "set", "--apply-to", "exchanges", "alt", "^src$", `{"alternate-exchange":"ae"}`)
			ctl("policies", "set", "gone", ".*", `{"expires":100000}`)
			ctl("policies", "clear", "gone")
			ctl("parameters", "set", "federation-upstream", "up", `{"uri":"amqp://elsewhere","expires":3600000}`)
			ctl("global-parameters", "set", "cluster_name", `"crash-test"`)

			w.start()
			ch = dialChannel(t, w.URL())
			check(t, ch.Confirm(false))
			// Compaction: the log is rewritten from the broker's snapshot.
			for range 150 {
				_, err := ch.QueueDeclare("churn", true, false, false, false, nil)
				check(t, err)
				_, err = ch.QueueDelete("churn", false, false, false)
				check(t, err)
			}
			expectBodies(t, ch, "dead", "m1", "m2", "m3")
			expectBodies(t, ch, "jobs", "m4", "m5")
			publishConfirmed(t, ch, "", "jobs", "m6")
			publishConfirmed(t, ch, "src", "nowhere", "u1")
			if how == "SIGTERM" {
				w.stop()
			} else {
				w.kill()
			}

			want := []string{
				`global cluster_name "crash-test"`,
				`parameter / federation-upstream up {"expires":3600000,"uri":"amqp://elsewhere"}`,
				`policy operator=false / alt ^src$ exchanges {"alternate-exchange":"ae"} 0`,
				`policy operator=false / limit ^jobs$ queues {"dead-letter-exchange":"dlx","max-length":3} 1`,
				`policy operator=true / cap ^jobs all {"max-length":2} 0`,
				`queue dead effective=map[]`,
				`queue jobs effective=map[x-dead-letter-exchange:dlx x-max-length:2]`,
				`queue unrouted effective=map[]`,
			}
			if got := policyState(t, w.dir); !slices.Equal(got, want) {
				t.Fatalf("after %s:\n%s\nwant\n%s", how, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}

			w.start()
			ch = dialChannel(t, w.URL())
			check(t, ch.Confirm(false))
			publishConfirmed(t, ch, "", "jobs", "m7")
			publishConfirmed(t, ch, "", "jobs", "m8")
			publishConfirmed(t, ch, "src", "nowhere", "u2")
			expectBodies(t, ch, "jobs", "m7", "m8")
			expectBodies(t, ch, "dead", "m6")
			expectBodies(t, ch, "unrouted", "u1", "u2")
			w.stop()
		})
	}
}

// publishConfirmed publishes a persistent message and waits for its confirm.
func publishConfirmed(t *testing.T, ch *amqp.Channel, exchange, key, body string) {
	t.Helper()
	dc, err := ch.PublishWithDeferredConfirm(exchange, key, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
	check(t, err)
	if !dc.Wait() {
		t.Fatalf("publish %q to %q nacked", body, exchange)
	}
}

package crash

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestCrashDefinitionsLoadedAtBoot starts the binary with --load-definitions
// of a file RabbitMQ 3.10.8 exported: its users log in with their RabbitMQ
// passwords, into their vhost, within their permissions; a restart (kill -9,
// then SIGTERM) with the same flag imports again without error and keeps
// what clients did meanwhile; `warren definitions export` writes it back.
func TestCrashDefinitionsLoadedAtBoot(t *testing.T) {
	bin := buildWarren(t)
	file, err := filepath.Abs("../../internal/definitions/testdata/rabbitmq-3.10.8.json")
	check(t, err)
	w := newWarren(t, bin, t.TempDir(), "--load-definitions", file)
	w.start()
	alice := func() string { return "amqp://alice:alicepw@" + w.addr + "/shop" } // a new port each start
	ch := dialChannel(t, alice())
	check(t, ch.Publish("orders", "order.created.42", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("42")}))
	_, err = ch.QueueDeclare("orders.extra", true, false, false, false, nil) // alice may configure ^orders.*
	check(t, err)
	if _, err := ch.QueueDeclare("elsewhere", true, false, false, false, nil); err == nil || !strings.Contains(err.Error(), "ACCESS_REFUSED - access to queue 'elsewhere' in vhost 'shop' refused for user 'alice'") {
		t.Fatalf("declare outside alice's configure permission: %v", err)
	}
	w.kill()
	w.start()
	ch = dialChannel(t, alice())
	expectBodies(t, ch, "orders.new", "42")
	if _, err := ch.QueueDeclarePassive("orders.extra", true, false, false, false, nil); err != nil {
		t.Fatalf("queue declared by a client after the import: %v", err)
	}
	if _, err := amqp.Dial("amqp://bob:wrong@" + w.addr + "/shop"); err == nil {
		t.Fatal("bob logged in with a wrong password")
	}
	w.stop()

	out, err := exec.Command(bin, "definitions", "--data-dir", w.dir, "export").Output()
	if err != nil {
		t.Fatalf("warren definitions export: %v", err)
	}
	var exported struct {
		Users []struct {
			Name         string `json:"name"`
			PasswordHash string `json:"password_hash"`
		} `json:"users"`
		Queues []struct{ Name, VHost string } `json:"queues"`
	}
	check(t, json.Unmarshal(out, &exported))
	names := map[string]bool{}
	for _, q := range exported.Queues {
		names[q.VHost+"/"+q.Name] = true
	}
	for _, q := range []string{"shop/orders.new", "shop/inventory", "shop/audit", "shop/orders.dead", "shop/orders.extra"} {
		if !names[q] {
			t.Errorf("export lacks queue %s: %s", q, out)
		}
	}
	if len(exported.Users) != 4 {
		t.Errorf("export has %d users: %s", len(exported.Users), out)
	}
}

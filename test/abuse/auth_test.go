package abuse

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/testbroker"
)

// TestAbuseLoginThrottled: a burst of wrong-password logins from one address
// is answered slowly past the first few, while a correct login from the same
// machine goes straight through: when it is in, most of the refusals are
// still pending. Every refusal is logged with its reason.
func TestAbuseLoginThrottled(t *testing.T) {
	const guesses = 40
	const burst = 10 // refusals answered at once (amqpserver's authBurst)
	w := startWarren(t, 0)
	var refused atomic.Int32
	var wg sync.WaitGroup
	for range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := amqp.Dial("amqp://guest:wrong@" + w.addr + "/")
			if err == nil {
				c.Close()
				t.Error("a wrong password logged in")
				return
			}
			refused.Add(1)
		}()
	}
	testbroker.CheckFor(t, 20*time.Second, func() bool { return refused.Load() >= burst })
	c, err := amqp.Dial(w.URL())
	if err != nil {
		t.Fatalf("correct login during the guessing: %v", err)
	}
	c.Close()
	if n := refused.Load(); n > guesses/2 {
		t.Errorf("%d of %d refusals answered before a correct login got in: not throttled", n, guesses)
	}
	wg.Wait()
	if n := strings.Count(w.logText(), `reason="bad password"`); n != guesses {
		t.Errorf("%d refusals logged with their reason, want %d", n, guesses)
	}
	w.checkUp()
}

package kafka

import (
	"os/exec"
	"testing"
	"time"
)

// TestKafkaKcatScript runs test/interop/kcat.sh (produce/consume with keys,
// headers and every codec, metadata, offsets, group consumption) against
// the target, as .ci/run's interop step does against the CI broker.
func TestKafkaKcatScript(t *testing.T) {
	kcatPath(t)
	tg := broker(t)
	out, err := runBounded(exec.Command("bash", "../interop/kcat.sh", tg.kafka), 200*time.Second)
	t.Logf("kcat.sh %s:\n%s", tg.kafka, out)
	if err != nil {
		t.Fatalf("kcat.sh: %v", err)
	}
}

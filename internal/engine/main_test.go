package engine

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds how long a test waits for something that should happen
// promptly; it is never the expected duration of anything.
const guard = 10 * time.Second

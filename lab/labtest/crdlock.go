package labtest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// LockCRD holds an exclusive lock named after a CRD until the test ends, across test processes (`go test ./...`
// runs packages at once). Tests that replace a CRD another test process may be using hold it: osm's and
// linkerd-smi's TrafficSplit CRDs share one name, and switching between them deletes every TrafficSplit.
func LockCRD(t testing.TB, name string) {
	t.Helper()
	dir := runDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("labtest: %v", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "crd-"+strings.ReplaceAll(name, "/", "_")+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		t.Fatalf("labtest: locking CRD %s: %v", name, err)
	}
	t.Cleanup(func() { _ = f.Close() }) // closing releases the lock
}

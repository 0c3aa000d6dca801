package embed

import (
	"fmt"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ortRuntime tracks the ONNX Runtime environment. onnxruntime_go keeps one
// process-wide environment bound to one shared library, so this is the one
// piece of package state: a reference count, so that the environment lives
// exactly as long as some encoder uses it, and the library path, so that a
// second encoder asking for a different library fails loudly instead of
// silently running on the first.
var ortRuntime struct {
	mu   sync.Mutex
	refs int
	lib  string
}

// acquireRuntime loads the ONNX Runtime shared library at lib (first caller)
// or checks that lib is the one already loaded, and takes a reference. An
// empty lib takes the loaded library, or loads fallback.
func acquireRuntime(lib, fallback string) error {
	ortRuntime.mu.Lock()
	defer ortRuntime.mu.Unlock()
	if lib == "" && ortRuntime.refs > 0 {
		lib = ortRuntime.lib
	}
	if lib == "" {
		lib = fallback
	}
	if ortRuntime.refs > 0 {
		if lib != ortRuntime.lib {
			return fmt.Errorf("ONNX Runtime is already loaded from %s; cannot also load %s in the same process", ortRuntime.lib, lib)
		}
		ortRuntime.refs++
		return nil
	}
	if _, err := os.Stat(lib); err != nil {
		return fmt.Errorf("ONNX Runtime library: %w (run scripts/setup.sh, or give its path with --onnxruntime or $%s)", err, RuntimeEnv)
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("initialising ONNX Runtime from %s: %w", lib, err)
	}
	ortRuntime.refs, ortRuntime.lib = 1, lib
	return nil
}

// releaseRuntime drops a reference and tears the environment down with the last.
func releaseRuntime() {
	ortRuntime.mu.Lock()
	defer ortRuntime.mu.Unlock()
	if ortRuntime.refs == 0 {
		return
	}
	ortRuntime.refs--
	if ortRuntime.refs == 0 {
		// Nothing useful can be done with a teardown error at this point.
		_ = ort.DestroyEnvironment()
		ortRuntime.lib = ""
	}
}

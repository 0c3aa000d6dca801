package embed

import (
	"os"
	"path/filepath"
)

// ModelsEnv names the environment variable that says where local models
// live; RuntimeEnv names the one for the ONNX Runtime library.
const (
	ModelsEnv  = "AUTOROUTER_MODELS"
	RuntimeEnv = "AUTOROUTER_ONNXRUNTIME"
)

// DefaultModelsDir returns where local models are looked for when the
// caller names no directory, and how that was chosen (for error messages):
// $AUTOROUTER_MODELS when set, else the per-user data directory
// ($XDG_DATA_HOME/autorouter/models, or ~/.local/share/autorouter/models),
// which scripts/setup.sh points at the models it installs. It never
// depends on the current directory. lookupEnv may be nil.
func DefaultModelsDir(lookupEnv func(string) (string, bool)) (dir, from string) {
	get := func(k string) string {
		if lookupEnv == nil {
			return ""
		}
		v, _ := lookupEnv(k)
		return v
	}
	if v := get(ModelsEnv); v != "" {
		return v, "from $" + ModelsEnv
	}
	base := get("XDG_DATA_HOME")
	if base == "" {
		if home := get("HOME"); home != "" {
			base = filepath.Join(home, ".local", "share")
		} else if home, err := os.UserHomeDir(); err == nil {
			base = filepath.Join(home, ".local", "share")
		}
	}
	if base == "" {
		return "models", "the per-user data directory is unknown (no $HOME); set $" + ModelsEnv
	}
	return filepath.Join(base, "autorouter", "models"), "the per-user default; scripts/setup.sh links it to the models it installs, or set $" + ModelsEnv
}

// RuntimeLibIn is where scripts/setup.sh puts the ONNX Runtime library
// inside a models directory.
func RuntimeLibIn(modelsDir string) string {
	return filepath.Join(modelsDir, "onnxruntime", "libonnxruntime.so")
}

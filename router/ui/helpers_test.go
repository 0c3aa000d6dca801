package ui_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/internal/testenv"
	"github.com/autorouter/autorouter/router/manage"
	"github.com/autorouter/autorouter/router/proxy"
	"github.com/autorouter/autorouter/router/store"
	"github.com/autorouter/autorouter/router/ui"
)

// server is a running autorouter with the management API and the page,
// assembled as 'autorouter serve' does.
type server struct {
	base     string
	addr     string
	progress *ui.Progress
	stop     func()
}

// startServer serves testenv.SeedConfig over the SQLite database at dbPath on addr
// ("127.0.0.1:0" for any port; a previous server's addr to restart it).
func startServer(t testing.TB, dbPath, addr string) *server {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(testenv.SeedConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Background goroutines may log after the test ends, so the server
	// logs to stderr (AUTOROUTER_TEST_LOGS=1) rather than to t.Log.
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("AUTOROUTER_TEST_LOGS") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	progress := ui.NewProgress()
	ctx, cancel := context.WithCancel(context.Background())
	st := store.Options{Path: dbPath, Secret: testenv.SeedMasterKey}
	m, c, err := manage.Start(ctx, cfg, manage.StartOptions{
		Router: router.Options{ModelsDir: testenv.ModelsDir(t), OnProgress: progress.Update, Logger: logger},
		Store:  &st, Interval: 200 * time.Millisecond})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := proxy.New(proxy.Options{Limits: cfg.GeneralSettings.Limits, Logger: logger})
	srv.SetManager(m)
	srv.SetUI(ui.New(ui.Options{Client: srv.Client, Progress: progress, Logger: logger}))
	if err := srv.SetClient(c); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	// A restart binds the port the browser knows; the old listener has
	// just closed, so give the kernel a moment if it is not free yet.
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go srv.Serve(ln)
	s := &server{base: "http://" + ln.Addr().String(), addr: ln.Addr().String(), progress: progress}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			srv.Shutdown(sctx)
			cancel()
			c.Close()
			m.Close()
		})
	}
	t.Cleanup(s.stop)
	return s
}

func sqlitePath(t testing.TB) string { return filepath.Join(t.TempDir(), "models.db") }

// call makes one request with key and returns the status and body.
func call(t testing.TB, method, url, key, body string) (int, string) {
	t.Helper()
	resp, b := testenv.Send(t, method, url, key, body)
	return resp.StatusCode, b
}

// apiError is OpenAI's error envelope.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func decodeError(t testing.TB, body string) (msg, param string) {
	t.Helper()
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not an error envelope: %s", body)
	}
	if e.Error.Param != nil {
		param = *e.Error.Param
	}
	return e.Error.Message, param
}

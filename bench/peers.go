package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// portkeyVersion is the @portkey-ai/gateway release the harness installs
// from npm: the version a user running `npx @portkey-ai/gateway` gets today.
const portkeyVersion = "1.15.2"

// target is something the load generator sends chat requests to: the fake
// upstream itself, autorouter, or a peer.
type target struct {
	name   string
	url    string // chat completions endpoint
	header http.Header
	model  string
	stop   func()
}

// direct is the upstream without a proxy: the baseline every overhead is
// measured against.
func (h *harness) direct() target {
	return target{name: "direct (no proxy)", url: h.upBase + "/v1/chat/completions", model: "fake-model", stop: func() {}}
}

// startAutorouter serves cfg (a config.yaml) and returns its base URL and
// process once it is ready. extra are further serve flags.
func (h *harness) startAutorouter(ctx context.Context, name, cfg, cache string, timeout time.Duration, extra ...string) (string, *proc, error) {
	return h.launchAutorouter(ctx, name, cfg, cache, timeout, nil, extra...)
}

// launchAutorouter is startAutorouter run through prefix, a command that
// execs the rest (prlimit --nofile=256:256, say); nil runs it directly.
func (h *harness) launchAutorouter(ctx context.Context, name, cfg, cache string, timeout time.Duration, prefix []string, extra ...string) (string, *proc, error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	args := append(append([]string{}, prefix...), h.bin, "serve", "--config", cfg, "--host", "127.0.0.1", "--port", fmt.Sprint(port),
		"--models", h.o.models, "--cache", cache, "--watch", "0")
	args = append(args, extra...)
	p, err := start(h.logs, name, nil, h.o.work, args...)
	if err != nil {
		return "", nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.waitHTTP(ctx, base+"/health/readiness", 200, timeout); err != nil {
		p.stop()
		return "", nil, err
	}
	return base, p, nil
}

// autorouterPlain proxies one plain model to the fake upstream.
func (h *harness) autorouterPlain(ctx context.Context) (target, error) {
	cfg := filepath.Join(h.o.work, "plain.yaml")
	body := fmt.Sprintf(`model_list:
  - model_name: fake-model
    litellm_params:
      model: openai/fake-model
      api_base: %s/v1
      api_key: sk-fake
`, h.upBase)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return target{}, fmt.Errorf("writing %s: %w", cfg, err)
	}
	base, p, err := h.startAutorouter(ctx, "autorouter-plain", cfg, "", 30*time.Second)
	if err != nil {
		return target{}, err
	}
	return target{name: "autorouter", url: base + "/v1/chat/completions", model: "fake-model", stop: p.stop}, nil
}

// nginxBinary finds nginx, installing the Debian package when it is missing
// and the harness may (root or passwordless sudo).
func (h *harness) nginxBinary(ctx context.Context) (string, error) {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	var prefix []string
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("sudo"); err != nil {
			return "", fmt.Errorf("nginx is not installed and installing it needs root: run `apt-get install -y nginx` and bench again")
		}
		prefix = []string{"sudo", "-n"}
	}
	h.progress("installing nginx from Debian packages (apt-get install nginx)...")
	install := func() ([]byte, error) {
		argv := append(prefix, "apt-get", "install", "-y", "--no-install-recommends", "nginx")
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if out, err := install(); err != nil {
		argv := append(prefix, "apt-get", "update")
		if upd, uerr := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("apt-get update failed (%v): %s", uerr, lastLines(upd, 3))
		}
		if out, err = install(); err != nil {
			return "", fmt.Errorf("apt-get install nginx failed (%v): %s", err, lastLines(out, 3))
		}
	}
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("apt-get installed nginx but no nginx binary is on PATH or in /usr/sbin")
}

// startNginx runs nginx as a plain reverse proxy in front of the fake
// upstream, with upstream keep-alive and no buffering so streams pass
// through as they come: the floor for one proxy hop.
func (h *harness) startNginx(ctx context.Context) (target, error) {
	bin, err := h.nginxBinary(ctx)
	if err != nil {
		return target{}, err
	}
	port, err := freePort()
	if err != nil {
		return target{}, err
	}
	dir := filepath.Join(h.o.work, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return target{}, fmt.Errorf("creating %s: %w", dir, err)
	}
	up := strings.TrimPrefix(h.upBase, "http://")
	// nginx keeps its default access log, one line per request, as
	// autorouter writes one: each proxy pays for its request log.
	conf := fmt.Sprintf(`worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  upstream fake { server %[2]s; keepalive 256; }
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`, dir, up, port)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return target{}, fmt.Errorf("writing %s: %w", confPath, err)
	}
	p, err := start(h.logs, "nginx", nil, dir, bin, "-p", dir, "-c", confPath, "-e", "stderr")
	if err != nil {
		return target{}, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.waitHTTP(ctx, base+"/health", 200, 20*time.Second); err != nil {
		p.stop()
		return target{}, err
	}
	return target{name: "nginx proxy_pass", url: base + "/v1/chat/completions", model: "fake-model", stop: p.stop}, nil
}

// startPortkey installs @portkey-ai/gateway from npm into bench/.peers and
// runs it with Node.js, sending requests to the fake upstream as a custom
// OpenAI host.
func (h *harness) startPortkey(ctx context.Context) (target, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return target{}, fmt.Errorf("node is not installed (apt-get install -y nodejs npm)")
	}
	dir := filepath.Join(h.o.repo, "bench", ".peers", "portkey-"+portkeyVersion)
	entry := filepath.Join(dir, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js")
	if _, err := os.Stat(entry); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			return target{}, fmt.Errorf("npm is not installed (apt-get install -y npm)")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return target{}, fmt.Errorf("creating %s: %w", dir, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"autorouter-bench-portkey","private":true}`+"\n"), 0o644); err != nil {
			return target{}, fmt.Errorf("writing %s: %w", dir, err)
		}
		h.progress("installing @portkey-ai/gateway@%s from npm into %s...", portkeyVersion, dir)
		cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "@portkey-ai/gateway@"+portkeyVersion)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return target{}, fmt.Errorf("npm install @portkey-ai/gateway@%s failed (%v): %s", portkeyVersion, err, lastLines(out, 3))
		}
		if _, err := os.Stat(entry); err != nil {
			return target{}, fmt.Errorf("npm installed @portkey-ai/gateway but %s is missing", entry)
		}
	}
	port, err := freePort()
	if err != nil {
		return target{}, err
	}
	p, err := start(h.logs, "portkey", nil, dir, node, entry, fmt.Sprintf("--port=%d", port), "--headless")
	if err != nil {
		return target{}, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.waitHTTP(ctx, base+"/", 200, 60*time.Second); err != nil {
		p.stop()
		return target{}, err
	}
	hdr := http.Header{}
	hdr.Set("x-portkey-provider", "openai")
	hdr.Set("x-portkey-custom-host", h.upBase+"/v1")
	hdr.Set("Authorization", "Bearer sk-fake")
	return target{name: "Portkey gateway " + portkeyVersion, url: base + "/v1/chat/completions", header: hdr, model: "fake-model", stop: p.stop}, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

package ui_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/autorouter/autorouter/router/internal/testenv"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write router/ui/screenshots/auto-router-form.png and playground.png from the browser test")

// browser is a headless Chromium page driven by chromedp.
type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string // where every step's screenshot goes
	step int

	mu     sync.Mutex
	errors []string // JavaScript exceptions and console errors
}

// newBrowser starts Debian's chromium headless with a fresh profile
// (testenv.Chromium says when a missing one fails the test).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := testenv.Chromium(t)
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, dir: os.Getenv("AUTOROUTER_UI_SCREENSHOTS")}
	if b.dir == "" {
		b.dir = t.TempDir()
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Registered after the profile's TempDir, so chromium exits before the
	// profile is removed.
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	// Uncaught exceptions and console.error calls fail the test at its
	// end. The browser's own log (a fetch answered 401 or 400, which the
	// test provokes) is not an error of the page.
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source == "") {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// run runs actions with a deadline, failing the test with what was being
// done.
func (b *browser) run(what string, steps ...step) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed")
		b.t.Fatalf("%s: %v", what, err)
	}
}

// step is one action of the browser test.
type step = chromedp.Action[chromedp.Void]

// css selects the first element matching a CSS selector.
func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// waitJS waits until the JavaScript expression is true.
func waitJS(expr string) step {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(12*time.Second))
}

// waitText waits until the element sel shows text containing want.
func waitText(sel, want string) step {
	return waitJS(fmt.Sprintf(`(() => { const el = document.querySelector(%q); return !!el && !el.closest('[hidden]') && el.textContent.includes(%q); })()`, sel, want))
}

// modelsShown waits until the model list is drawn and no refresh of it
// is under way, so that its rows can be clicked.
func modelsShown(model, want string) step {
	return chromedp.Steps(
		chromedp.WaitVisible(css("#view-models")),
		waitJS(`document.querySelector('#models-table').getAttribute('aria-busy') === 'false'`),
		waitText(fmt.Sprintf(`tr[data-model=%q]`, model), want))
}

// errorNextTo is the error shown in the .field of the control sel.
func errorNextTo(sel string) string {
	return fmt.Sprintf(`(() => { const c = document.querySelector(%q); const e = c && c.closest('.field').querySelector('.field-error'); return e && !e.hidden && c.getAttribute('aria-invalid') === 'true' ? e.textContent : ''; })()`, sel)
}

// waitErrorNextTo waits until the control sel is marked invalid with an
// error containing want next to it.
func waitErrorNextTo(sel, want string) step {
	return waitJS(fmt.Sprintf(`%s.includes(%q)`, errorNextTo(sel), want))
}

// pick chooses value in the <select> sel as a person would: the value
// changes and change fires.
func pick(sel, value string) step {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const s = document.querySelector(%q); if (![...s.options].some(o => o.value === %q)) throw new Error('no option ' + %q + ' in ' + %q); s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); })()`, sel, value, value, sel, value))
}

// retype clears the text control sel and types text into it.
func retype(sel, text string) step {
	return chromedp.Steps(
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const c = document.querySelector(%q); c.focus(); c.value = ''; c.dispatchEvent(new Event('input', {bubbles: true})); })()`, sel)),
		chromedp.SendKeys(css(sel), text),
	)
}

// shot saves a full-page screenshot of the current step.
func (b *browser) shot(name string) string {
	b.step++
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	// From the top, so the sticky header is drawn where it belongs.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.step, name))
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// keep copies the screenshot at p into router/ui/screenshots/ when the
// test runs with -update-screenshots.
func (b *browser) keep(p, name string) {
	if !*updateScreenshots || p == "" {
		return
	}
	data, err := os.ReadFile(p)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("screenshots", name), data, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("updated screenshots/%s", name)
}

func (b *browser) jsErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// eval returns the value of a JavaScript expression.
func eval[T any](b *browser, what, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestSeedFlowInBrowser walks LiteLLM's seed flow as an operator does in
// the page: log in (a wrong key first), add auto_router1 through Add Model
// > Auto Router (client and server errors shown by their fields first),
// find it in the model list, watch the playground route the seed's prompt
// to litellm-claude-35 and see a real request go the same way, restart the
// server on the same database, edit an utterance, delete the router.
func TestSeedFlowInBrowser(t *testing.T) {
	b := newBrowser(t)
	db := sqlitePath(t)
	s := startServer(t, db, "127.0.0.1:0")
	start := time.Now()

	// Log in: a wrong key is refused with a clear message.
	b.run("open the page", chromedp.Navigate(s.base+"/ui"), chromedp.WaitVisible(css("#login-key")))
	b.run("log in with a wrong key",
		chromedp.SendKeys(css("#login-key"), "sk-wrong"),
		chromedp.Click(css("#login-form button[type=submit]")),
		waitText("#login-error", "that key was refused by the server (401)"))
	b.shot("wrong-key")
	stored := eval[string](b, "read storage", `JSON.stringify([sessionStorage.length, localStorage.length, document.cookie])`)
	if stored != `[0,0,""]` {
		t.Fatalf("a refused key was kept: %s", stored)
	}
	b.run("log in with the keyboard",
		retype("#login-key", testenv.SeedMasterKey+kb.Enter),
		modelsShown("litellm-claude-35", "healthy"))
	stored = eval[string](b, "read storage", `JSON.stringify([sessionStorage.getItem('autorouter.masterKey'), localStorage.length, document.cookie, location.href.includes('sk-admin')])`)
	if stored != `["sk-admin",0,"",false]` {
		t.Fatalf("the key must live in sessionStorage only: %s", stored)
	}
	cfgButtons := eval[int](b, "count buttons of config models", `document.querySelectorAll('tr[data-model="litellm-gpt-4.1"] button, tr[data-model="litellm-gpt-4.1"] a[href^="#/edit"]').length`)
	if cfgButtons != 0 {
		t.Fatalf("a config model has %d edit/delete controls", cfgButtons)
	}
	b.shot("models")

	// Add Model > Auto Router, with a threshold out of range first.
	r1, r2 := "#ar-routes > fieldset:nth-child(1)", "#ar-routes > fieldset:nth-child(2)"
	b.run("open Add Model > Auto Router",
		chromedp.Click(css(`#nav a[data-view="form"]`)),
		chromedp.WaitVisible(css("#ar-form")),
		chromedp.Click(css("#tab-router")),
		chromedp.WaitVisible(css(r1)))
	b.run("fill in the router",
		chromedp.SendKeys(css("#ar-name"), "auto_router1"),
		chromedp.SendKeys(css("#ar-default"), "gpt-4o-mini"),
		pick("#ar-embedding", "custom-text-embedding-model"),
		pick(r1+` [data-name="target"]`, "litellm-gpt-4.1"),
		chromedp.SendKeys(css(r1+` [data-name="utterances"]`), "litellm is great"),
		chromedp.SendKeys(css(r1+` [data-name="description"]`), "positive affirmation"),
		chromedp.SendKeys(css(r1+` [data-name="threshold"]`), "1.5"),
		chromedp.Click(css("#ar-add-route")),
		chromedp.WaitVisible(css(r2)),
		pick(r2+` [data-name="target"]`, "litellm-claude-35"),
		chromedp.SendKeys(css(r2+` [data-name="utterances"]`), "how to code a program in [language]"),
		chromedp.SendKeys(css(r2+` [data-name="description"]`), "coding assistant"),
		chromedp.SendKeys(css(r2+` [data-name="threshold"]`), "0.5"))
	unlabelled := eval[[]string](b, "find controls without a label", `[...document.querySelectorAll('input, select, textarea')].filter(c => c.type !== 'hidden' && !c.labels.length && !c.getAttribute('aria-label')).map(c => c.id || c.name || c.outerHTML)`)
	if len(unlabelled) > 0 {
		t.Fatalf("controls without a <label>: %v", unlabelled)
	}
	b.run("send it with threshold 1.5",
		chromedp.Click(css("#ar-submit")),
		waitErrorNextTo(r1+` [data-name="threshold"]`, "outside 0.0–1.0"))
	b.shot("threshold-error")

	// The server's own checks: an unknown default model is named by the
	// error envelope's param, and shown next to Default Model.
	b.run("send it with an unknown default model",
		retype(r1+` [data-name="threshold"]`, "0.5"),
		retype("#ar-default", "no-such-model"),
		chromedp.Click(css("#ar-submit")),
		waitErrorNextTo("#ar-default", `"no-such-model" is not a model_name`))
	others := eval[string](b, "other fields", `[...document.querySelectorAll('#ar-form [aria-invalid="true"]')].map(e => e.id).join(',')`)
	if others != "ar-default" {
		t.Fatalf("fields marked invalid: %q, want only ar-default", others)
	}
	b.shot("server-error")

	b.run("fix the default model", retype("#ar-default", "gpt-4o-mini"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#ar-name').focus()`))
	b.keep(b.shot("auto-router-form"), "auto-router-form.png")
	b.run("add the router",
		chromedp.Click(css("#ar-submit")),
		modelsShown("auto_router1", "healthy"))
	row := eval[string](b, "read the row", `document.querySelector('tr[data-model="auto_router1"]').innerText`)
	for _, want := range []string{"Auto router", "auto_router", "database", "2 routes", "default gpt-4o-mini", "custom-text-embedding-model"} {
		if !strings.Contains(row, want) {
			t.Fatalf("router row %q lacks %q", row, want)
		}
	}
	first := eval[string](b, "first row", `document.querySelector('#models-table tbody tr').dataset.model`)
	if first != "auto_router1" {
		t.Fatalf("first row is %q; auto routers come first", first)
	}
	b.shot("router-listed")

	// The playground decides as the prompt is typed.
	const prompt = "how to code a program in python"
	b.run("open the playground",
		chromedp.Click(css(`tr[data-model="auto_router1"] a[href^="#/playground"]`)),
		chromedp.WaitVisible(css("#pg-text")),
		waitJS(`document.querySelector('#pg-router').value === 'auto_router1'`),
		chromedp.SendKeys(css("#pg-text"), prompt),
		waitText("#pg-route", "litellm-claude-35"),
		waitText("#pg-model", "litellm-claude-35"),
		waitJS(`document.querySelectorAll('#pg-scores tbody tr').length === 2`),
		waitText("#pg-embedded", prompt),
		waitText("#pg-nearest tbody tr:first-child", "how to code a program in [language]"))
	chosen := eval[string](b, "chosen row", `document.querySelector('#pg-scores tr.chosen').dataset.route + ' ' + !!document.querySelector('#pg-scores tr.chosen .bar.passed .mark')`)
	if chosen != "litellm-claude-35 true" {
		t.Fatalf("chosen score row %q", chosen)
	}
	b.keep(b.shot("playground"), "playground.png")
	if got := testenv.RouteOf(t, s.base, prompt); got != "litellm-claude-35" {
		t.Fatalf("a real request for the prompt went to %q, the playground said litellm-claude-35", got)
	}
	b.run("send it for real from the page",
		chromedp.Click(css("#pg-send")),
		waitText("#pg-reply-meta", "route litellm-claude-35"),
		waitText("#pg-reply-text", "claude here"))

	// A conversation pasted as JSON messages: the last user turn decides.
	conv, _ := json.Marshal([]map[string]string{{"role": "user", "content": prompt}, {"role": "assistant", "content": "sure"}, {"role": "user", "content": "litellm is great"}})
	b.run("paste a conversation",
		chromedp.Click(css(`input[name="pg-mode"][value="messages"]`)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const t = document.querySelector('#pg-text'); t.value = %q; t.dispatchEvent(new Event('input', {bubbles: true})); })()`, conv)),
		waitText("#pg-route", "litellm-gpt-4.1"))

	// Metrics at a glance count what just happened.
	b.run("open the metrics",
		chromedp.Click(css(`#nav a[data-view="metrics"]`)),
		waitText(`#mx-stats [data-stat="Requests"] .value`, ""),
		waitJS(`Number(document.querySelector('#mx-stats [data-stat="Routing decisions"] .value').textContent.replace(/,/g, '')) >= 2`),
		waitJS(`/\d/.test(document.querySelector('#mx-stats [data-stat="Decision p99"] .value').textContent)`),
		waitText("#mx-routes tbody", "litellm-claude-35"))
	b.shot("metrics")

	// Restart the server on the same database and port: the page keeps
	// working and the router is still there.
	s.stop()
	s = startServer(t, db, s.addr)
	b.run("reload after the restart",
		chromedp.Navigate(s.base+"/ui#/models"),
		modelsShown("auto_router1", "healthy"))
	b.shot("after-restart")

	// Edit: the form comes back filled in; change the coding utterance.
	b.run("edit the router",
		chromedp.Click(css(`tr[data-model="auto_router1"] a[href^="#/edit/"]`)),
		waitText("#form-title", "Edit auto router auto_router1"),
		waitJS(fmt.Sprintf(`document.querySelector(%q).value === 'how to code a program in [language]'`, r2+` [data-name="utterances"]`)),
		waitJS(fmt.Sprintf(`document.querySelector(%q).value === 'positive affirmation'`, r1+` [data-name="description"]`)),
		retype(r2+` [data-name="utterances"]`, "what is the weather like in [city]"))
	b.shot("edit")
	b.run("save the edit",
		chromedp.Click(css("#ar-submit")),
		modelsShown("auto_router1", "healthy"),
		waitText("#notice", "Saved auto router auto_router1"))
	if _, out := call(t, "GET", s.base+"/model/info", testenv.SeedMasterKey, ""); !strings.Contains(out, "what is the weather like in [city]") || strings.Contains(out, "how to code a program in [language]") {
		t.Fatalf("the edit did not land: %s", out)
	}
	if got := testenv.RouteOf(t, s.base, prompt); got == "litellm-claude-35" {
		t.Fatalf("after the edit the prompt still goes to %q", got)
	}

	// Threshold help: labelled prompts in, accuracy before and after the
	// fit out, and the fitted thresholds saved into the stored router.
	const data = `{"text": "litellm is really great", "route": "litellm-gpt-4.1"}
{"text": "i think litellm is great", "route": "litellm-gpt-4.1"}
{"text": "what is the weather like in paris", "route": "litellm-claude-35"}
{"text": "weather in london today", "route": "litellm-claude-35"}
{"text": "how to code a program in python", "route": null}
{"text": "recommend a good pizza place", "route": null}`
	b.run("evaluate labelled prompts",
		chromedp.Click(css(`#nav a[data-view="thresholds"]`)),
		chromedp.WaitVisible(css("#th-data")),
		waitJS(`document.querySelector('#th-router').value === 'auto_router1'`),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const t = document.querySelector('#th-data'); t.value = %q; t.dispatchEvent(new Event('input', {bubbles: true})); })()`, data)),
		waitText("#th-count", "6 labelled prompts"),
		chromedp.SendKeys(css("#th-min-oos"), "0.5"),
		chromedp.Click(css("#th-run")),
		waitText("#th-summary", "In-scope accuracy"),
		waitText("#th-summary", "→"),
		waitText("#th-fit-note", "out-of-scope recall ≥ 50.0%"),
		waitText("#th-save", "Save fitted thresholds into auto_router1"))
	b.shot("thresholds")
	fitted := eval[map[string]float64](b, "fitted thresholds", `Object.fromEntries([...document.querySelectorAll('#th-routes tbody tr')].map(r => [r.dataset.route, Number(r.children[2].textContent)]))`)
	b.run("save the fitted thresholds",
		chromedp.Click(css("#th-save")),
		waitText("#th-save-status", "Saved: auto_router1 now routes with the fitted thresholds"))
	_, out := call(t, "GET", s.base+"/model/info", testenv.SeedMasterKey, "")
	var info struct {
		Data []struct {
			ModelName string `json:"model_name"`
			Params    struct {
				Config string `json:"auto_router_config"`
			} `json:"litellm_params"`
		}
	}
	json.Unmarshal([]byte(out), &info)
	saved := map[string]float64{}
	for _, d := range info.Data {
		if d.ModelName != "auto_router1" {
			continue
		}
		var rf struct {
			Routes []struct {
				Name       string   `json:"name"`
				Utterances []string `json:"utterances"`
				Threshold  *float64 `json:"score_threshold"`
			}
		}
		json.Unmarshal([]byte(d.Params.Config), &rf)
		for _, r := range rf.Routes {
			if r.Threshold != nil {
				saved[r.Name] = *r.Threshold
			}
			if len(r.Utterances) != 1 {
				t.Fatalf("saving thresholds changed the utterances: %s", d.Params.Config)
			}
		}
	}
	if len(fitted) != 2 || fmt.Sprint(saved) != fmt.Sprint(fitted) {
		t.Fatalf("the page showed fitted thresholds %v, the router has %v", fitted, saved)
	}

	// Add Model > Model: a plain deployment.
	b.run("add a plain model",
		chromedp.Click(css(`#nav a[data-view="form"]`)),
		chromedp.Click(css("#tab-model")),
		chromedp.WaitVisible(css("#md-form")),
		chromedp.SendKeys(css("#md-name"), "gpt-4o-mini"),
		chromedp.SendKeys(css("#md-model"), "mock/extra"),
		chromedp.Click(css("#md-submit")),
		waitErrorNextTo("#md-name", "is defined in config.yaml"),
		retype("#md-name", "extra-mock"),
		chromedp.Click(css("#md-submit")),
		modelsShown("extra-mock", "database"),
		waitJS(`document.querySelectorAll('tr[data-model="extra-mock"] a[href^="#/edit"]').length === 0`),
		waitJS(`!!document.querySelector('tr[data-model="extra-mock"] button[aria-label="Delete extra-mock"]')`))

	// Long work: a router with 3,000 utterances shows its embedding
	// progress while the page stays usable.
	var lines []string
	for i := range 3000 {
		lines = append(lines, fmt.Sprintf("example request number %d about subject %d", i, i%97))
	}
	b.run("fill in a big router",
		chromedp.Click(css(`#nav a[data-view="form"]`)),
		chromedp.Click(css("#tab-router")),
		chromedp.WaitVisible(css(r1)),
		chromedp.SendKeys(css("#ar-name"), "big_router"),
		chromedp.SendKeys(css("#ar-default"), "gpt-4o-mini"),
		pick("#ar-embedding", "custom-text-embedding-model"),
		pick(r1+` [data-name="target"]`, "litellm-gpt-4.1"),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const t = document.querySelector(%q); t.value = %q; t.dispatchEvent(new Event('input', {bubbles: true})); })()`, r1+` [data-name="utterances"]`, strings.Join(lines, "\n"))),
		waitText("#ar-utterance-count", "3,000 utterances"),
		// Record what the progress areas show, however briefly.
		chromedp.Evaluate[chromedp.Void](`(() => { window.seen = new Set(); for (const sel of ['#ar-progress', '#activity']) { const el = document.querySelector(sel); new MutationObserver(() => { if (!el.hidden) window.seen.add(el.textContent); }).observe(el, {childList: true, subtree: true, characterData: true, attributes: true}); } })()`),
		chromedp.Click(css("#ar-submit")),
		waitText("#ar-status", "Saving: embedding 3,000 utterances"),
		// The page stays usable while the router is built.
		chromedp.Click(css(`#nav a[data-view="playground"]`)),
		chromedp.WaitVisible(css("#pg-text")),
		waitText("#activity", "Building big_router"))
	b.shot("progress")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out, `"model_name":"big_router"`) {
		if time.Now().After(deadline) {
			t.Fatal("big_router was not added")
		}
		time.Sleep(50 * time.Millisecond)
		_, out = call(t, "GET", s.base+"/model/info", testenv.SeedMasterKey, "")
	}
	seen := eval[[]string](b, "progress seen", `[...window.seen]`)
	midway := false
	for _, s := range seen {
		if strings.Contains(s, "of 3,000 utterances embedded") && strings.Contains(s, "/s") && strings.Contains(s, "left") {
			midway = true
		}
	}
	if !midway {
		t.Fatalf("no progress with a rate and time left was shown; saw %q", seen)
	}
	b.run("the big router is listed",
		chromedp.Click(css(`#nav a[data-view="models"]`)),
		modelsShown("big_router", "3,000 utterances"),
		waitJS(`document.querySelector('#activity').hidden`))

	// A narrow window: every view fits without scrolling sideways.
	b.run("narrow window", chromedp.EmulateViewport(390, 800))
	for _, v := range []struct{ hash, section string }{
		{"models", "view-models"}, {"new", "view-form"}, {"playground?router=auto_router1", "view-playground"},
		{"thresholds", "view-thresholds"}, {"metrics", "view-metrics"},
	} {
		b.run("open "+v.hash+" in a narrow window",
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = '#/%s'`, v.hash)),
			chromedp.WaitVisible(css("#"+v.section)),
			waitJS(`document.documentElement.scrollWidth <= window.innerWidth + 1`))
		if v.section == "view-models" || v.section == "view-playground" {
			b.shot("narrow-" + v.section)
		}
	}
	b.run("wide window", chromedp.EmulateViewport(1280, 800), chromedp.Evaluate[chromedp.Void](`location.hash = '#/models'`),
		modelsShown("auto_router1", "healthy"))

	// Delete, with a confirm step.
	b.run("ask to delete, and change your mind",
		chromedp.Click(css(`tr[data-model="auto_router1"] button[aria-label="Delete auto_router1"]`)),
		chromedp.WaitVisible(css("#confirm")),
		waitJS(`document.activeElement === document.querySelector('#confirm-no')`),
		chromedp.KeyEvent(kb.Escape),
		waitJS(`!document.querySelector('#confirm').open`),
		// A delete would have been sent before this refresh.
		chromedp.Click(css("#models-refresh")),
		modelsShown("auto_router1", "healthy"))
	if _, out := call(t, "GET", s.base+"/v2/model/info?search=auto_router1", testenv.SeedMasterKey, ""); !strings.Contains(out, `"total_count":1`) {
		t.Fatalf("Escape in the confirm dialog deleted the router: %s", out)
	}
	b.run("ask to delete",
		chromedp.Click(css(`tr[data-model="auto_router1"] button[aria-label="Delete auto_router1"]`)),
		chromedp.WaitVisible(css("#confirm")),
		waitText("#confirm-title", "Delete auto router auto_router1?"))
	b.shot("confirm-delete")
	b.run("confirm",
		chromedp.Click(css("#confirm-yes")),
		waitJS(`!document.querySelector('tr[data-model="auto_router1"]')`),
		waitText("#notice", "Deleted auto router auto_router1"))
	b.shot("deleted")
	if got := testenv.RouteOf(t, s.base, prompt); got != "status 404" {
		t.Fatalf("a deleted router answered: %s", got)
	}
	if errs := b.jsErrors(); len(errs) > 0 {
		t.Fatalf("JavaScript errors on the page:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("seed flow in the browser took %v; screenshots in %s", time.Since(start).Round(time.Millisecond), b.dir)
}

// TestPageLogic runs the page's own functions in the browser on made-up
// inputs: grouping /model/info into model groups with their health, and
// the Prometheus parsing and histogram quantiles of the metrics view.
func TestPageLogic(t *testing.T) {
	b := newBrowser(t)
	s := startServer(t, sqlitePath(t), "127.0.0.1:0")
	b.run("open the page", chromedp.Navigate(s.base+"/ui"), chromedp.WaitVisible(css("#login-key")))
	run := func(what, body string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => { `+body+` })()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}

	got := run("group models", `
		const m = await import('/ui/assets/models.js');
		const dep = (name, model, info = {}) => ({model_name: name, litellm_params: {model}, model_info: {id: name + Math.random(), source: 'config', db_model: false, cooling_down: false, ...info}});
		const data = [
			dep('gpt', 'openai/gpt-4o', {cooling_down: true}),
			dep('gpt', 'openai/gpt-4o'),
			dep('emb', 'text-embedding-3-small'),
			dep('local', 'local/all-MiniLM-L6-v2'),
			dep('broken', 'auto_router/broken', {source: 'db', db_model: true, error: 'stored model "broken": cannot be decrypted'}),
			{...dep('zrouter', 'auto_router/zrouter', {source: 'db', db_model: true}), litellm_params: {model: 'auto_router/zrouter', auto_router_config: '{"routes":[{"name":"gpt","utterances":["a","b"]}]}', auto_router_default_model: 'gpt', auto_router_embedding_model: 'local'}},
		];
		m.models.data = data;
		m.models.groups = m.groupModels(data, new Set(['gpt', 'emb', 'local', 'zrouter']));
		m.renderModels();
		const rows = [...document.querySelectorAll('#models-table tbody tr')].map(r => r.dataset.model + ': ' + [...r.children].slice(1).map(td => td.textContent.trim()).join(' | '));
		return rows.join('\n');`)
	want := strings.Join([]string{
		"broken: Auto router | auto_router | 1 | database | not servingstored model \"broken\": cannot be decrypted | EditDelete",
		"zrouter: Auto router | auto_router | 1 | database | healthy | TryEditDelete",
		"emb: Embedding | openai | 1 | config fileread-only | healthy | ",
		"gpt: Chat | openai | 2 | config fileread-only | cooling down (1 of 2) | ",
		"local: Embedding | local | 1 | config fileread-only | healthy | ",
	}, "\n")
	if got != want {
		t.Fatalf("model rows:\n%s\nwant:\n%s", got, want)
	}

	got = run("metrics", `
		const m = await import('/ui/assets/metrics.js');
		const text = [
			'# HELP autorouter_requests_total Requests.',
			'# TYPE autorouter_requests_total counter',
			'autorouter_requests_total{endpoint="/v1/chat/completions",model="auto",route="coder",status="200"} 7',
			'autorouter_requests_total{endpoint="/v1/chat/completions",model="auto",route="default",status="200"} 2',
			'autorouter_requests_total{endpoint="/v1/chat/completions",model="auto",route="coder",status="502"} 1',
			'autorouter_fallbacks_total{router="auto",reason="below_threshold"} 2',
			'autorouter_route_embed_seconds_bucket{le="0.001"} 0',
			'autorouter_route_embed_seconds_bucket{le="0.0025"} 5',
			'autorouter_route_embed_seconds_bucket{le="0.005"} 9',
			'autorouter_route_embed_seconds_bucket{le="0.01"} 10',
			'autorouter_route_embed_seconds_bucket{le="+Inf"} 10',
			'autorouter_route_embed_seconds_sum 0.03',
			'autorouter_route_embed_seconds_count 10',
		].join('\n');
		const s = m.summarize(m.parseProm(text));
		const r = (x) => x === null ? 'null' : x.toFixed(3);
		return [s.requests, s.errors, s.fallbacks, s.decisions, r(s.embed.p50), r(s.embed.p90), r(s.embed.p99),
			m.quantile(0.5, []) === null, m.quantile(0.99, [{le: 1, count: 0}, {le: Infinity, count: 4}]),
			s.routes.map(x => x.route + '=' + x.count + '/' + x.errors).join(',')].join(' ');`)
	// p50: rank 5 falls at the top of the (1ms, 2.5ms] bucket; p90: rank
	// 9 at the top of (2.5ms, 5ms]; p99: rank 9.9 is 90% into (5ms, 10ms].
	if want := "10 1 2 10 2.500 5.000 9.500 true 1 coder=8/1,default=2/0"; got != want {
		t.Fatalf("metrics summary %q, want %q", got, want)
	}
	if errs := b.jsErrors(); len(errs) > 0 {
		t.Fatalf("JavaScript errors on the page:\n%s", strings.Join(errs, "\n"))
	}
}

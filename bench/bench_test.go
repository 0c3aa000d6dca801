package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autorouter/autorouter/router/config"
)

func TestParseStatus(t *testing.T) {
	f, err := os.Open("testdata/status.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := parseStatus(f)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 150000<<10 || m.Peak != 180224<<10 {
		t.Fatalf("got %+v, want VmRSS 150000 kB and VmHWM 180224 kB in bytes", m)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\nVmHWM:\t1 kB\n", "VmRSS:\tx kB\nVmHWM:\t1 kB\n"} {
		if _, err := parseStatus(strings.NewReader(bad)); err == nil {
			t.Errorf("parseStatus(%q) gave no error", bad)
		}
	}
}

func TestMetricValue(t *testing.T) {
	expo := "# HELP go_gc_heap_allocs_objects_total x\n# TYPE go_gc_heap_allocs_objects_total counter\n" +
		"go_gc_heap_allocs_objects_total 123456\nautorouter_requests_total{model=\"a\"} 3\ngo_gc_heap_allocs_objects_total_other 9\n"
	if v, err := metricValue(expo, "go_gc_heap_allocs_objects_total"); err != nil || v != 123456 {
		t.Fatalf("got %v, %v", v, err)
	}
	if _, err := metricValue(expo, "missing_total"); err == nil {
		t.Fatal("a missing metric must be an error")
	}
}

func TestParseEval(t *testing.T) {
	plain := `{"InScope":1500,"OutOfScope":100,"InScopeAccuracy":0.862,"OutOfScopeRecall":0,"PerRoute":{},"Confused":null}`
	b, _, fitted, err := parseEval([]byte(plain))
	if err != nil || fitted || b.InScopeAccuracy != 0.862 || b.InScope != 1500 {
		t.Fatalf("plain: %+v fitted=%t err=%v", b, fitted, err)
	}
	fit := `{"before":{"InScope":10,"OutOfScope":2,"InScopeAccuracy":0.5,"OutOfScopeRecall":0},"after":{"InScope":10,"OutOfScope":2,"InScopeAccuracy":0.7,"OutOfScopeRecall":0.5},"thresholds":{"a":0.4}}`
	b, a, fitted, err := parseEval([]byte(fit))
	if err != nil || !fitted || b.InScopeAccuracy != 0.5 || a.OutOfScopeRecall != 0.5 {
		t.Fatalf("fit: before %+v after %+v fitted=%t err=%v", b, a, fitted, err)
	}
	for _, bad := range []string{"", "not json", `{"x":1}`} {
		if _, _, _, err := parseEval([]byte(bad)); err == nil {
			t.Errorf("parseEval(%q) gave no error", bad)
		}
	}
}

func TestCLINCSplitAndRoutes(t *testing.T) {
	c, err := loadCLINC("testdata/clinc_small")
	if err == nil {
		t.Fatal("a missing dataset file must be an error")
	}
	if !strings.Contains(err.Error(), "--clinc") {
		t.Errorf("error %q does not say how to point at the dataset", err)
	}
	c = smallCLINC(t)
	fit, test := c.split()
	// Even-indexed rows of each intent (2 + 1) and of oos_train (1) and
	// oos_val (1) fit; the odd-indexed rows (1 + 1; 0 and 1) test.
	count := func(rows []labelled) (in, oos int) {
		for _, r := range rows {
			if r.Route == nil {
				oos++
			} else {
				in++
			}
		}
		return
	}
	if in, oos := count(fit); in != 3 || oos != 2 {
		t.Errorf("fit rows: %d in scope, %d out, want 3 and 2", in, oos)
	}
	if in, oos := count(test); in != 2 || oos != 1 {
		t.Errorf("test rows: %d in scope, %d out, want 2 and 1", in, oos)
	}
	seen := map[string]bool{}
	for _, r := range append(fit, test...) {
		if seen[r.Text] {
			t.Errorf("%q is in both halves", r.Text)
		}
		seen[r.Text] = true
	}
	names, utts := c.routes(2)
	if strings.Join(names, ",") != "balance,restaurant_reservation" || len(utts["balance"]) != 2 || utts["balance"][0] != "what is my balance" {
		t.Errorf("few-shot routes: %v %v", names, utts)
	}
}

// TestGeneratedConfigLoads runs the harness's generated CLINC config and
// router.json through autorouter's own strict loader, so a format drift
// fails here rather than halfway through a benchmark run.
func TestGeneratedConfigLoads(t *testing.T) {
	c := smallCLINC(t)
	dir := t.TempDir()
	names, utts := c.routes(0)
	half := 0.5
	for _, tc := range []struct {
		scoring, agg string
		th           *float64
	}{{"", "", nil}, {"", "max", &half}, {"classifier", "", nil}} {
		cfgDir := filepath.Join(dir, tc.scoring+tc.agg)
		cfg, err := clincConfig(cfgDir, names, true)
		if err != nil {
			t.Fatal(err)
		}
		rj, err := routerJSON(names, utts, routerDoc{Scoring: tc.scoring, Aggregation: tc.agg, Threshold: tc.th})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfgDir, "router.json"), rj, 0o644); err != nil {
			t.Fatal(err)
		}
		loaded, err := config.Load(cfg, config.Options{})
		if err != nil {
			t.Fatalf("scoring %q: generated config does not load: %v", tc.scoring, err)
		}
		g := loaded.Group("clinc")
		if len(g) != 1 || g[0].Params.AutoRouterConfig == nil || len(g[0].Params.AutoRouterConfig.Routes) != 2 {
			t.Fatalf("scoring %q: want one auto router with 2 routes, got %+v", tc.scoring, g)
		}
	}
}

// smallCLINC loads testdata/clinc_small.json, a few rows in CLINC150's
// layout, as the harness loads the real file.
func smallCLINC(t *testing.T) *clinc {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/clinc_small.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "clinc150_train_val.json"), b, 0o644)
	c, err := loadCLINC(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

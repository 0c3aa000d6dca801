package eval

import (
	"fmt"
	"math"
	"strings"
)

// CurvePoint is one global threshold's operating point.
type CurvePoint struct {
	Threshold        float32 `json:"threshold"`
	InScopeAccuracy  float64 `json:"in_scope_accuracy"`
	OutOfScopeRecall float64 `json:"out_of_scope_recall"`
}

// CurveSteps is how many steps Curve divides [0,1] into.
const CurveSteps = gridSteps

// Curve sweeps one threshold for all routes over [0,1] in steps of
// 1/CurveSteps and returns in-scope accuracy and out-of-scope recall at
// each: the trade-off any threshold can reach on these examples. Routes
// not in routes keep their own thresholds.
func Curve(examples []Example, routes []string) []CurvePoint {
	ds := compile(examples, routes)
	out := make([]CurvePoint, 0, CurveSteps+1)
	g := goal{in: ds.in, out: ds.out}
	for i, p := range sweep(ds) {
		acc, rec := g.rates(p)
		out = append(out, CurvePoint{Threshold: float32(i) / CurveSteps, InScopeAccuracy: acc, OutOfScopeRecall: rec})
	}
	return out
}

// PlotMark is an operating point drawn on a curve plot.
type PlotMark struct {
	Label            string
	InScopeAccuracy  float64
	OutOfScopeRecall float64
}

// PlotSeries is one curve of a plot and its marked points.
type PlotSeries struct {
	Name  string
	Curve []CurvePoint
	Marks []PlotMark
}

// plotColours are colour-blind safe (Okabe-Ito).
var plotColours = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"}

// plotShapes tell marks apart: the first mark of each series is a
// circle, the second a square, the third a diamond, then triangles.
var plotShapes = []string{"circle", "square", "diamond", "triangle"}

// PlotSVG draws in-scope accuracy (y) against out-of-scope recall (x) for
// each series, with its marks, as a standalone SVG document. The y axis
// starts at the lowest accuracy a curve has by the time its recall reaches
// 95% (in steps of 5%): beyond, every curve only falls, and showing the
// fall would squash the part where settings differ. Curves are clipped
// at the bottom.
func PlotSVG(title string, series []PlotSeries) string {
	const (
		w, h                   = 900, 520
		left, right, top, bott = 70, 330, 44, 52
	)
	pw, ph := float64(w-left-right), float64(h-top-bott)
	ymin := 1.0
	for _, s := range series {
		for _, p := range s.Curve {
			ymin = math.Min(ymin, p.InScopeAccuracy)
			if p.OutOfScopeRecall >= 0.95 {
				break
			}
		}
		for _, m := range s.Marks {
			ymin = math.Min(ymin, m.InScopeAccuracy)
		}
	}
	ymin = math.Max(0, math.Floor(ymin*20-1e-9)/20)
	if ymin > 0.95 {
		ymin = 0.95
	}
	x := func(rec float64) float64 { return float64(left) + rec*pw }
	y := func(acc float64) float64 { return float64(top) + ph - (acc-ymin)/(1-ymin)*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<clipPath id="plot-area"><rect x="%d" y="%d" width="%.0f" height="%.0f"/></clipPath>`+"\n", left, top-8, pw+8, ph+8)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14" font-weight="bold">%s</text>`+"\n", left, escapeXML(title))
	for v := 0.0; v <= 1+1e-9; v += 0.1 {
		xx := x(v)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", xx, top, xx, float64(top)+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0f%%</text>`+"\n", xx, float64(top)+ph+18, 100*v)
	}
	step := 0.1
	switch {
	case 1-ymin <= 0.2+1e-9:
		step = 0.02
	case 1-ymin <= 0.5+1e-9:
		step = 0.05
	}
	for v := ymin; v <= 1+1e-9; v += step {
		yy := y(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, yy, float64(left)+pw, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.0f%%</text>`+"\n", left-6, yy+4, 100*v)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">out-of-scope recall (share of unknown prompts sent to the default model)</text>`+"\n", float64(left)+pw/2, h-10)
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">in-scope accuracy</text>`+"\n", float64(top)+ph/2)
	ly := top + 8
	for i, s := range series {
		col := plotColours[i%len(plotColours)]
		var pts []string
		for _, p := range s.Curve {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.OutOfScopeRecall), y(p.InScopeAccuracy)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" clip-path="url(#plot-area)" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		// Label the thresholds at every 0.1 where the curve is moving.
		for _, p := range s.Curve {
			t := float64(p.Threshold) * 10
			if math.Abs(t-math.Round(t)) > 1e-4 || p.OutOfScopeRecall < 0.02 || p.OutOfScopeRecall > 0.98 {
				continue
			}
			px, py := x(p.OutOfScopeRecall), y(p.InScopeAccuracy)
			if p.InScopeAccuracy < ymin {
				continue
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/><text x="%.1f" y="%.1f" font-size="10" fill="%s">%.1f</text>`+"\n", px, py, col, px-8, py-6, col, p.Threshold)
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", w-right+14, ly, w-right+34, ly, col)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", w-right+40, ly+4, escapeXML(s.Name))
		ly += 18
		for j, m := range s.Marks {
			shape := plotShapes[min(j, len(plotShapes)-1)]
			mx, my := x(m.OutOfScopeRecall), y(max(m.InScopeAccuracy, ymin))
			writeShape(&b, shape, mx, my, col)
			writeShape(&b, shape, float64(w-right+24), float64(ly), col)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s (%.1f%% / %.1f%%)</text>`+"\n", w-right+40, ly+4, escapeXML(m.Label), 100*m.InScopeAccuracy, 100*m.OutOfScopeRecall)
			ly += 16
		}
		ly += 6
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func writeShape(b *strings.Builder, shape string, x, y float64, col string) {
	const r = 5
	switch shape {
	case "square":
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%d" height="%d" fill="white" stroke="%s" stroke-width="2"/>`+"\n", x-r, y-r, 2*r, 2*r, col)
	case "diamond":
		fmt.Fprintf(b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`+"\n", x, y-r-1, x+r+1, y, x, y+r+1, x-r-1, y, col)
	case "triangle":
		fmt.Fprintf(b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="white" stroke="%s" stroke-width="2"/>`+"\n", x, y-r-1, x+r+1, y+r, x-r-1, y+r, col)
	default:
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%d" fill="%s"/>`+"\n", x, y, r, col)
	}
}

func escapeXML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

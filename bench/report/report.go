// Package report renders the bench harness's results: Markdown tables and a
// latency-percentile plot as SVG, with no dependencies beyond the standard
// library.
package report

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Table is a Markdown table.
type Table struct {
	Header []string
	Rows   [][]string
}

// Add appends a row; cells beyond the header are an error the caller sees
// as a malformed table, so Add pads or trims to the header's width.
func (t *Table) Add(cells ...string) {
	row := make([]string, len(t.Header))
	copy(row, cells)
	t.Rows = append(t.Rows, row)
}

// Markdown renders t. Pipes inside cells are escaped.
func (t *Table) Markdown() string {
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + strings.ReplaceAll(c, "|", `\|`) + " |")
		}
		b.WriteString("\n")
	}
	line(t.Header)
	sep := make([]string, len(t.Header))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range t.Rows {
		line(r)
	}
	return b.String()
}

// Ms formats a duration in milliseconds with a precision that suits it.
func Ms(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case math.Abs(ms) >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case math.Abs(ms) >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f ms", ms)
	}
}

// Us formats a duration in microseconds, signed, for added latencies.
func Us(d time.Duration) string {
	us := float64(d) / float64(time.Microsecond)
	if math.Abs(us) >= 10000 {
		return fmt.Sprintf("%+.1f ms", us/1000)
	}
	return fmt.Sprintf("%+.0f µs", us)
}

// Ratio formats a/b as "1.23x", or "n/a" when b is zero.
func Ratio(a, b float64) string {
	if b == 0 || math.IsNaN(a/b) || math.IsInf(a/b, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// Pct formats a fraction as a percentage.
func Pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// Point is one percentile of a latency distribution.
type Point struct {
	Percentile float64 // e.g. 99.9
	Latency    time.Duration
}

// Series is one line of a percentile plot.
type Series struct {
	Name   string
	Points []Point
}

// palette is colour-blind-safe (Okabe-Ito).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"}

// nines maps a percentile to a log "nines" axis: 50→0.3, 90→1, 99→2, 99.9→3.
func nines(p float64) float64 { return -math.Log10(1 - p/100) }

// PercentilePlot draws latency (log scale) against percentile (log nines)
// for each series, in the style of HdrHistogram plots.
func PercentilePlot(title string, series []Series) string {
	const (
		w, h                   = 720, 420
		left, right, top, bott = 70, 170, 40, 50
	)
	pw, ph := float64(w-left-right), float64(h-top-bott)
	minL, maxL := math.Inf(1), math.Inf(-1)
	maxN := 1.0
	for _, s := range series {
		for _, p := range s.Points {
			if p.Latency > 0 {
				v := math.Log10(float64(p.Latency) / float64(time.Millisecond))
				minL, maxL = math.Min(minL, v), math.Max(maxL, v)
			}
			maxN = math.Max(maxN, nines(p.Percentile))
		}
	}
	if math.IsInf(minL, 1) {
		minL, maxL = -1, 1
	}
	minL, maxL = math.Floor(minL), math.Ceil(maxL)
	if maxL <= minL {
		maxL = minL + 1
	}
	maxN = math.Ceil(maxN)
	x := func(p float64) float64 { return float64(left) + nines(p)/maxN*pw }
	y := func(d time.Duration) float64 {
		v := math.Log10(math.Max(float64(d)/float64(time.Millisecond), math.Pow(10, minL)))
		return float64(top) + ph - (v-minL)/(maxL-minL)*ph
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, escape(title))
	for e := minL; e <= maxL; e++ {
		yy := float64(top) + ph - (e-minL)/(maxL-minL)*ph
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, yy, float64(left)+pw, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, yy+4, escape(msLabel(math.Pow(10, e))))
	}
	for _, p := range []float64{50, 90, 99, 99.9, 99.99} {
		if nines(p) > maxN+1e-9 {
			break
		}
		xx := x(p)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", xx, top, xx, float64(top)+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">p%g</text>`+"\n", xx, float64(top)+ph+18, p)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">percentile</text>`+"\n", float64(left)+pw/2, h-8)
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">latency (log)</text>`+"\n", float64(top)+ph/2)
	for i, s := range series {
		col := palette[i%len(palette)]
		var pts []string
		for _, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.Percentile), y(p.Latency)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		for _, p := range s.Points {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(p.Percentile), y(p.Latency), col)
		}
		ly := top + 10 + i*18
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", w-right+15, ly, w-right+35, ly, col)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", w-right+40, ly+4, escape(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func msLabel(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%gs", ms/1000)
	case ms >= 1:
		return fmt.Sprintf("%gms", ms)
	default:
		return fmt.Sprintf("%gµs", ms*1000)
	}
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

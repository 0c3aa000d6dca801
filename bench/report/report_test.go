package report

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func TestTableMarkdown(t *testing.T) {
	tb := Table{Header: []string{"a", "b"}}
	tb.Add("1", "x|y")
	tb.Add("2") // short rows are padded
	want := "| a | b |\n| --- | --- |\n| 1 | x\\|y |\n| 2 |  |\n"
	if got := tb.Markdown(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Ms(1234 * time.Microsecond), "1.23 ms"},
		{Ms(45 * time.Millisecond), "45.0 ms"},
		{Ms(250 * time.Millisecond), "250 ms"},
		{Us(40 * time.Microsecond), "+40 µs"},
		{Us(-3 * time.Microsecond), "-3 µs"},
		{Us(25 * time.Millisecond), "+25.0 ms"},
		{Ratio(3, 2), "1.50x"},
		{Ratio(1, 0), "n/a"},
		{Pct(0.9412), "94.1%"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestPercentilePlotIsWellFormedSVG(t *testing.T) {
	svg := PercentilePlot(`p<50> & "more"`, []Series{
		{Name: "direct", Points: []Point{{50, 100 * time.Microsecond}, {99.9, 2 * time.Millisecond}}},
		{Name: "a & b", Points: []Point{{50, time.Millisecond}, {90, 3 * time.Millisecond}, {99, 9 * time.Millisecond}, {99.9, 40 * time.Millisecond}}},
		{Name: "empty"},
	})
	d := xml.NewDecoder(strings.NewReader(svg))
	polylines, texts := 0, []string{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "polyline" {
				polylines++
			}
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	if polylines != 3 {
		t.Errorf("%d polylines, want one per series (3)", polylines)
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{`p<50> & "more"`, "a & b", "p99.9", "10ms"} {
		if !strings.Contains(joined, want) {
			t.Errorf("plot text lacks %q: %s", want, joined)
		}
	}
}

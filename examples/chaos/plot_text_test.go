package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// TestPlotTextFitsTheCanvas draws a short run as SVG and checks that no
// text runs past the canvas, measured with the font this machine would
// draw it in: the one fc-match picks for the family the SVG names (DejaVu
// Sans on a Debian without Liberation), which may well be wider than the
// font the layout was computed with. The text's box, its width and the
// font's ascent and descent, is mapped through the SVG's transforms
// (rotated axis labels included).
func TestPlotTextFitsTheCanvas(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "chaos.svg")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-duration=2s", "-rate=20", "-json", "-plot", svg}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	texts, w, h := svgTexts(t, b)
	if len(texts) < 30 {
		t.Fatalf("%d texts in the SVG, want the picture's (>= 30)", len(texts))
	}
	faces := map[string]*opentype.Font{}
	for _, tx := range texts {
		f, ok := faces[tx.family]
		if !ok {
			f = machineFont(t, tx.family)
			faces[tx.family] = f
		}
		face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: tx.size, DPI: 72, Hinting: font.HintingNone})
		if err != nil {
			t.Fatal(err)
		}
		width := fixedToFloat(font.MeasureString(face, tx.s))
		m := face.Metrics()
		ascent, descent := fixedToFloat(m.Ascent), fixedToFloat(m.Descent)
		face.Close()
		// The box in the text's own coordinates: it starts at (x, y) on
		// its baseline and runs along +x; SVG's y grows downwards.
		minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
		for _, c := range [][2]float64{{tx.x, tx.y - ascent}, {tx.x + width, tx.y - ascent}, {tx.x, tx.y + descent}, {tx.x + width, tx.y + descent}} {
			px, py := tx.m.apply(c[0], c[1])
			minX, minY, maxX, maxY = min(minX, px), min(minY, py), max(maxX, px), max(maxY, py)
		}
		const slack = 0.5 // rounding of the coordinates the SVG writes
		if minX < -slack || minY < -slack || maxX > w+slack || maxY > h+slack {
			t.Errorf("%q (%s %gpx) spans x %.1f..%.1f, y %.1f..%.1f: past the %gx%g canvas", tx.s, tx.family, tx.size, minX, maxX, minY, maxY, w, h)
		}
	}
}

// svgText is one text element of an SVG: its string, font and the
// transform from its coordinates to the canvas's.
type svgText struct {
	s      string
	family string
	size   float64
	x, y   float64
	m      affine
}

// svgTexts returns the texts of an SVG written by gonum's vgsvg and the
// canvas size (its viewBox).
func svgTexts(t *testing.T, b []byte) ([]svgText, float64, float64) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	stack := []affine{identity()}
	var texts []svgText
	var w, h float64
	var cur *svgText
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range tok.Attr {
				attr[a.Name.Local] = a.Value
			}
			m := stack[len(stack)-1].mul(parseTransform(t, attr["transform"]))
			stack = append(stack, m)
			switch tok.Name.Local {
			case "svg":
				if _, err := fmt.Sscanf(attr["viewBox"], "0 0 %g %g", &w, &h); err != nil {
					t.Fatalf("viewBox %q: %v", attr["viewBox"], err)
				}
			case "text":
				x, _ := strconv.ParseFloat(attr["x"], 64)
				y, _ := strconv.ParseFloat(attr["y"], 64)
				cur = &svgText{x: x, y: y, m: m}
				style := attr["style"]
				if f := regexp.MustCompile(`font-family:([^;]+)`).FindStringSubmatch(style); f != nil {
					cur.family = strings.TrimSpace(strings.Split(f[1], ",")[0])
					cur.family = strings.Trim(cur.family, "'\"")
				}
				if f := regexp.MustCompile(`font-size:([0-9.]+)px`).FindStringSubmatch(style); f != nil {
					cur.size, _ = strconv.ParseFloat(f[1], 64)
				}
			}
		case xml.CharData:
			if cur != nil {
				cur.s += string(tok)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if tok.Name.Local == "text" && cur != nil {
				texts = append(texts, *cur)
				cur = nil
			}
		}
	}
	return texts, w, h
}

// affine is the SVG matrix (a b c d e f): x' = a x + c y + e, y' = b x + d y + f.
type affine [6]float64

func identity() affine { return affine{1, 0, 0, 1, 0, 0} }

// mul returns m followed, in the element's coordinates, by n: m × n.
func (m affine) mul(n affine) affine {
	return affine{
		m[0]*n[0] + m[2]*n[1], m[1]*n[0] + m[3]*n[1],
		m[0]*n[2] + m[2]*n[3], m[1]*n[2] + m[3]*n[3],
		m[0]*n[4] + m[2]*n[5] + m[4], m[1]*n[4] + m[3]*n[5] + m[5],
	}
}

func (m affine) apply(x, y float64) (float64, float64) {
	return m[0]*x + m[2]*y + m[4], m[1]*x + m[3]*y + m[5]
}

// parseTransform parses the scale, translate and rotate functions gonum
// writes.
func parseTransform(t *testing.T, s string) affine {
	t.Helper()
	m := identity()
	for _, f := range regexp.MustCompile(`(\w+)\(([^)]*)\)`).FindAllStringSubmatch(s, -1) {
		var args []float64
		for _, a := range strings.FieldsFunc(f[2], func(r rune) bool { return r == ',' || r == ' ' }) {
			v, err := strconv.ParseFloat(a, 64)
			if err != nil {
				t.Fatalf("transform %q: %v", s, err)
			}
			args = append(args, v)
		}
		var n affine
		switch {
		case f[1] == "scale" && len(args) == 2:
			n = affine{args[0], 0, 0, args[1], 0, 0}
		case f[1] == "translate" && len(args) == 2:
			n = affine{1, 0, 0, 1, args[0], args[1]}
		case f[1] == "rotate" && len(args) == 1:
			r := args[0] * math.Pi / 180
			n = affine{math.Cos(r), math.Sin(r), -math.Sin(r), math.Cos(r), 0, 0}
		default:
			t.Fatalf("transform %q: %s with %d arguments not handled", s, f[1], len(args))
		}
		m = m.mul(n)
	}
	return m
}

// machineFont returns the font fc-match picks on this machine for family:
// what a viewer here would draw the text in.
func machineFont(t *testing.T, family string) *opentype.Font {
	t.Helper()
	if _, err := exec.LookPath("fc-match"); err != nil {
		t.Skip("no fc-match (fontconfig) to find the machine's font")
	}
	out, err := exec.Command("fc-match", "-f", "%{file}", family).Output()
	if err != nil || len(out) == 0 {
		t.Skipf("fc-match %q: %v", family, err)
	}
	b, err := os.ReadFile(string(out))
	if err != nil {
		t.Fatal(err)
	}
	f, err := opentype.Parse(b)
	if err != nil {
		t.Skipf("%s: not a font this test can read (%v)", out, err)
	}
	t.Logf("%q is drawn here with %s", family, out)
	return f
}

func fixedToFloat(v fixed.Int26_6) float64 { return float64(v) / 64 }

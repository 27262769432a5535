package readme

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEListsEveryPolicyOption: the README's paragraph on the call
// policy names every exported function of package interceptors that
// returns a PolicyOption.
func TestREADMEListsEveryPolicyOption(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(root, "interceptors", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !fd.Name.IsExported() || fd.Type.Results == nil || len(fd.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fd.Type.Results.List[0].Type.(*ast.Ident); ok && id.Name == "PolicyOption" {
				opts = append(opts, fd.Name.Name)
			}
		}
	}
	if len(opts) < 8 {
		t.Fatalf("found %d PolicyOption constructors: %v", len(opts), opts)
	}
	_, para, ok := strings.Cut(readme(t), "The settings of the call policy")
	if !ok {
		t.Fatal(`README.md has no paragraph "The settings of the call policy"`)
	}
	para, _, _ = strings.Cut(para, "\n\n")
	for _, o := range opts {
		if !regexp.MustCompile("`" + o + `(\(|` + "`)").MatchString(para) {
			t.Errorf("README.md's call policy paragraph does not name %s", o)
		}
	}
}

// TestTestScriptCoverageIsDescribed: the README says which modules
// scripts/test.sh tests, and names them all.
func TestTestScriptCoverageIsDescribed(t *testing.T) {
	root := repoRoot(t)
	script, err := os.ReadFile(filepath.Join(root, "scripts", "test.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`for mod in ([^;]+);`).FindSubmatch(script)
	if m == nil {
		t.Fatal("scripts/test.sh: no `for mod in ...;` loop")
	}
	_, para, _ := strings.Cut(readme(t), "Run every test of every module")
	para, _, _ = strings.Cut(para, "```")
	for _, mod := range strings.Fields(string(m[1])) {
		if mod == "." {
			continue
		}
		if !strings.Contains(para, "`"+mod+"/`") {
			t.Errorf("README.md's description of scripts/test.sh does not name %s/, which it tests", mod)
		}
	}
}

// TestPackageDocsShowTheREADMEWay: go doc of endpoint and fallback starts
// users where the README does.
func TestPackageDocsShowTheREADMEWay(t *testing.T) {
	root := repoRoot(t)
	for file, want := range map[string]string{
		"endpoint/doc.go": "interceptors.WithEndpointEjection(endpoint.Config{})",
		"fallback/doc.go": "interceptors.Fallback(store.Handler())",
	} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not show %s, the README's way", file, want)
		}
		if !strings.Contains(readme(t), want) {
			t.Errorf("README.md no longer shows %s", want)
		}
	}
}

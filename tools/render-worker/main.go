// Command kubemint-render-worker builds kustomizations with kustomize's own
// Go API (sigs.k8s.io/kustomize/api/krusty), for kubemint, which starts it once
// and sends it one build after another instead of starting `kubectl kustomize`
// for each.
//
// Protocol: JSON lines. kubemint writes one request per line on stdin and
// reads one response per line on stdout, in order; a worker builds one
// kustomization at a time. The first line the worker prints is its greeting.
//
//	-> {"id":1,"dir":"/w/repo/overlays/dev","root":"/w/repo","maxOutput":1048576}
//	<- {"id":1,"yaml":"apiVersion: v1\n..."}
//	<- {"id":1,"error":"accumulating resources: ...","tooLarge":false}
//
// The build is that of `kustomize build --load-restrictor=LoadRestrictionsRootOnly`
// and `kubectl kustomize` of the same kustomize release, with the same defaults
// (no plugins, no Helm, no managed-by label, the kustomization's sort order),
// so the output is byte for byte theirs. Confinement: every kustomization
// root-only, builtin transformers and generators only (no exec or container
// plugins, no Helm), and a file system that refuses any path outside `root`
// (the private copy of the checkout kubemint wrote) and every write. The time
// limit is kubemint's: it kills a worker that does not answer in time.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

// kustomizeRelease is the kustomize release whose API this worker is built
// with (sigs.k8s.io/kustomize/api v0.21.1 is kustomize v5.8.1, the one
// kubectl 1.37.2 carries); go.mod pins it.
const kustomizeRelease = "v5.8.1"

// protocol is bumped when requests or responses change meaning.
const protocol = 1

type request struct {
	ID        uint64 `json:"id"`
	Dir       string `json:"dir"`
	Root      string `json:"root"`
	MaxOutput int    `json:"maxOutput"`
}

type response struct {
	ID       uint64 `json:"id"`
	YAML     string `json:"yaml,omitempty"`
	Error    string `json:"error,omitempty"`
	TooLarge bool   `json:"tooLarge,omitempty"`
}

type greeting struct {
	Worker    string `json:"worker"`
	Protocol  int    `json:"protocol"`
	Kustomize string `json:"kustomize"`
	API       string `json:"api"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(kustomizeRelease)
		return
	}
	if err := serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kubemint-render-worker:", err)
		os.Exit(1)
	}
}

func serve(in io.Reader, out io.Writer) error {
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	if err := enc.Encode(greeting{"kubemint-render-worker", protocol, kustomizeRelease, apiVersion()}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	r := bufio.NewReaderSize(in, 64*1024)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return nil // kubemint closed stdin: done
			}
			return err
		}
		var req request
		var resp response
		if jerr := json.Unmarshal(line, &req); jerr != nil {
			resp = response{Error: "unreadable request: " + jerr.Error()}
		} else {
			resp = build(req)
		}
		if err := enc.Encode(resp); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// build runs one kustomization; a panic in kustomize is that build's error,
// not the worker's end.
func build(req request) (resp response) {
	resp.ID = req.ID
	defer func() {
		if p := recover(); p != nil {
			resp = response{ID: req.ID, Error: fmt.Sprintf("kustomize panicked: %v", p)}
		}
		// A kustomization's `openapi:` field sets a process-wide schema that
		// the next build must not inherit (the default one is kept: parsing
		// it is the costly part of a build).
		if openapi.GetSchemaVersion() != "" {
			openapi.ResetOpenAPI()
		}
	}()
	root, err := filepath.EvalSymlinks(req.Root)
	if err != nil || !filepath.IsAbs(root) {
		return response{ID: req.ID, Error: fmt.Sprintf("root %q is not an absolute directory", req.Root)}
	}
	fs := confined{FileSystem: filesys.MakeFsOnDisk(), root: root}
	opts := krusty.MakeDefaultOptions()
	// As `kustomize build` with no flags: the kustomization's sortOptions decide.
	opts.Reorder = krusty.ReorderOptionUnspecified
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	opts.AddManagedbyLabel = false
	m, err := krusty.MakeKustomizer(opts).Run(fs, req.Dir)
	if err != nil {
		return response{ID: req.ID, Error: err.Error()}
	}
	yml, err := m.AsYaml()
	if err != nil {
		return response{ID: req.ID, Error: err.Error()}
	}
	if req.MaxOutput > 0 && len(yml) > req.MaxOutput {
		return response{ID: req.ID, TooLarge: true, Error: fmt.Sprintf("output over %d bytes", req.MaxOutput)}
	}
	resp.YAML = string(yml)
	return resp
}

// apiVersion is the version of sigs.k8s.io/kustomize/api built in, as the
// build info records it.
func apiVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "sigs.k8s.io/kustomize/api" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

// confined is the disk, read-only, seen through `root`: a path that is not
// `root` or under it (after following symlinks) does not exist, and nothing
// may be written.
type confined struct {
	filesys.FileSystem
	root string
}

var errWrite = errors.New("kubemint-render-worker writes nothing")

func (c confined) inside(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		// Missing: judged by where it would be (its parent must be inside).
		parent, perr := filepath.EvalSymlinks(filepath.Dir(abs))
		if perr != nil {
			return false
		}
		real = filepath.Join(parent, filepath.Base(abs))
	}
	return real == c.root || strings.HasPrefix(real, c.root+string(filepath.Separator))
}

func (c confined) outside(path string) error {
	return fmt.Errorf("%s: %w", path, os.ErrNotExist)
}

func (c confined) Create(path string) (filesys.File, error) { return nil, errWrite }
func (c confined) Mkdir(path string) error                  { return errWrite }
func (c confined) MkdirAll(path string) error               { return errWrite }
func (c confined) RemoveAll(path string) error              { return errWrite }
func (c confined) WriteFile(path string, data []byte) error { return errWrite }

func (c confined) Open(path string) (filesys.File, error) {
	if !c.inside(path) {
		return nil, c.outside(path)
	}
	return c.FileSystem.Open(path)
}

func (c confined) IsDir(path string) bool { return c.inside(path) && c.FileSystem.IsDir(path) }

func (c confined) Exists(path string) bool { return c.inside(path) && c.FileSystem.Exists(path) }

func (c confined) ReadDir(path string) ([]string, error) {
	if !c.inside(path) {
		return nil, c.outside(path)
	}
	return c.FileSystem.ReadDir(path)
}

func (c confined) ReadFile(path string) ([]byte, error) {
	if !c.inside(path) {
		return nil, c.outside(path)
	}
	return c.FileSystem.ReadFile(path)
}

func (c confined) CleanedAbs(path string) (filesys.ConfirmedDir, string, error) {
	if !c.inside(path) {
		return "", "", c.outside(path)
	}
	return c.FileSystem.CleanedAbs(path)
}

func (c confined) Glob(pattern string) ([]string, error) {
	found, err := c.FileSystem.Glob(pattern)
	if err != nil {
		return nil, err
	}
	kept := found[:0]
	for _, p := range found {
		if c.inside(p) {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

func (c confined) Walk(path string, walkFn filepath.WalkFunc) error {
	if !c.inside(path) {
		return c.outside(path)
	}
	return c.FileSystem.Walk(path, func(p string, info os.FileInfo, err error) error {
		if !c.inside(p) {
			return walkFn(p, info, c.outside(p))
		}
		return walkFn(p, info, err)
	})
}

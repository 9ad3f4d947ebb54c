package v1beta1

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field of one document: where it is and what to do about it.
type FieldError struct {
	// Doc names the document: "<source>#<n> <Kind> <namespace>/<name>".
	Doc string
	// Path is the field's JSON path, e.g. spec.analysis.metrics[0].thresholdRange.
	Path string
	// Message says what is wrong and how to fix it.
	Message string
}

func (e FieldError) Error() string {
	var b strings.Builder
	if e.Doc != "" {
		b.WriteString(e.Doc)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// ErrorList is every problem found, reported at once.
type ErrorList []FieldError

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Paths returns the field paths of the errors, in order (handy for tests and tools).
func (l ErrorList) Paths() []string {
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.Path
	}
	return out
}

// errs collects field errors for one document.
type errs struct {
	doc  string
	list ErrorList
}

func (e *errs) add(path, format string, args ...any) {
	e.list = append(e.list, FieldError{Doc: e.doc, Path: path, Message: fmt.Sprintf(format, args...)})
}

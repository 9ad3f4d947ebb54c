package v1beta1

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func typeOf(v any) reflect.Type { return reflect.TypeOf(v) }

// checkUnknown walks a generic JSON value along the Go type it will decode into and reports every key the type
// does not have, with the closest known field as a suggestion, so a typo is never silently dropped.
func checkUnknown(v any, t reflect.Type, path string, e *errs) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return // null: the zero value
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || t.Implements(unmarshalerType) {
		return // decodes itself (intstr, metav1.Time, …): its decoder reports bad values
	}
	if want, ok := wrongKind(v, t); ok {
		e.add(path, "expected %s, got %s", want, describeValue(v))
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				msg := "unknown field"
				if s := suggest(k, fields); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				e.add(join(path, k), "%s", msg)
				continue
			}
			checkUnknown(obj[k], ft, join(path, k), e)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			checkUnknown(obj[k], t.Elem(), join(path, k), e)
		}
	case reflect.Slice, reflect.Array:
		list, ok := v.([]any)
		if !ok {
			return
		}
		for i, item := range list {
			checkUnknown(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), e)
		}
	}
}

// wrongKind reports what t needs when the JSON value v cannot decode into it.
func wrongKind(v any, t reflect.Type) (string, bool) {
	switch t.Kind() {
	case reflect.String:
		_, ok := v.(string)
		return "a string", !ok
	case reflect.Bool:
		_, ok := v.(bool)
		return "true or false", !ok
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f, ok := v.(float64)
		return "a whole number", !ok || f != float64(int64(f))
	case reflect.Float32, reflect.Float64:
		_, ok := v.(float64)
		return "a number", !ok
	case reflect.Struct, reflect.Map:
		_, ok := v.(map[string]any)
		return "a mapping", !ok
	case reflect.Slice, reflect.Array:
		_, ok := v.([]any)
		return "a list", !ok
	}
	return "", false
}

func describeValue(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case float64:
		return fmt.Sprintf("the number %g", x)
	case bool:
		return fmt.Sprintf("%t", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%v", v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields maps the JSON names of t's fields (inline and embedded structs flattened) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if cached, ok := fieldCache.Load(t); ok {
		return cached.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if (f.Anonymous && name == "") || strings.Contains(opts, "inline") {
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	fieldCache.Store(t, out)
	return out
}

// suggest returns the known field closest to key: the same word in another case, or within a small edit
// distance.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestDist := "", 1<<30
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	lk := strings.ToLower(key)
	for _, name := range names {
		if strings.ToLower(name) == lk {
			return name
		}
		if d := editDistance(lk, strings.ToLower(name)); d < bestDist {
			best, bestDist = name, d
		}
	}
	limit := 2
	if len(key) > 9 {
		limit = 3
	}
	if bestDist <= limit {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

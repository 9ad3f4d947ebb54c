package v1beta1

// CheckUnknownFields reports every key of v (a document decoded into generic JSON values) that the Go type of
// target does not have, under path, with the closest known field as a suggestion: the strictness Load applies to
// Canaries, for other kinds that carry a Canary (a Release of package v1alpha1).
func CheckUnknownFields(v any, target any, doc, path string) ErrorList {
	e := &errs{doc: doc}
	checkUnknown(v, typeOf(target), path, e)
	return e.list
}

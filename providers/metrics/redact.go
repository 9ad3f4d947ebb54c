package metrics

import (
	"errors"
	"fmt"
	"net/url"
)

// redactErr strips the URL (which may carry an API key in its query) from a transport error.
func redactErr(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s %s: %w", uerr.Op, RedactURL(uerr.URL), uerr.Err)
	}
	return err
}

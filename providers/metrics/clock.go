package metrics

import "time"

// timeNow is the evaluation time of Prometheus instant queries; a variable so tests can pin it.
var timeNow = time.Now

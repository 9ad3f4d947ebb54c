package main

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// checksAttribute says whether namespace has the CanaryChecks search attribute registered as a KeywordList. With
// it, the worker's rollouts write a step's metric values in the upsert of the step's weight: one visibility write
// a step for the Temporal server and its database instead of two (that upsert and a memo update). Without it, or
// when the worker may not list the namespace's search attributes, they write the memo as before; registering it
// takes effect at the worker's next start.
func checksAttribute(ctx context.Context, tc client.Client, namespace string, log *zap.Logger) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	name := searchattr.CanaryChecks.GetName()
	resp, err := tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		log.Warn("metric values go in the memo: the search attributes of the namespace could not be listed",
			zap.String("namespace", namespace), zap.String("searchAttribute", name), zap.Error(err))
		return false
	}
	if t, ok := resp.GetCustomAttributes()[name]; ok && t == enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST {
		log.Info("metric values go in the search attribute "+name+", with the weight", zap.String("namespace", namespace))
		return true
	}
	log.Info("metric values go in the memo, a second visibility write a step: register "+name+
		" (KeywordList) to write them with the weight", zap.String("namespace", namespace))
	return false
}

package zaplog

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestKeyvalsBecomeZapFieldsAtTheRightLevel(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	var l log.Logger = New(zap.New(core))

	l.Info("Advance podinfo.test canary weight 10", "canary", "podinfo.test", "weight", 10)
	l.Warn("Halt", "err", errors.New("boom"), 42, "odd key", "dangling")
	l.(log.WithLogger).With("workflow", "CanaryRollout").Debug("tagged")
	l.Error("failed")

	entries := logs.AllUntimed()
	require.Len(t, entries, 4)
	require.Equal(t, zapcore.InfoLevel, entries[0].Level)
	require.Equal(t, map[string]any{"canary": "podinfo.test", "weight": int64(10)}, entries[0].ContextMap())
	require.Equal(t, zapcore.WarnLevel, entries[1].Level)
	require.Equal(t, map[string]any{"err": "boom", "42": "odd key", "!BADKEY": "dangling"}, entries[1].ContextMap())
	require.Equal(t, map[string]any{"workflow": "CanaryRollout"}, entries[2].ContextMap())
	require.Equal(t, zapcore.ErrorLevel, entries[3].Level)
}

func TestCallerPointsAtTheLoggingCode(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := New(zap.New(core, zap.AddCaller()))
	l.Info("here")
	require.Contains(t, logs.AllUntimed()[0].Caller.File, "zaplog_test.go")
}

// Package zaplog adapts a zap logger to the Temporal SDK's log.Logger, so the SDK, workflows (through
// workflow.GetLogger, which drops lines during replay) and activities all log through one zap core.
package zaplog

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// Logger is a log.Logger writing to zap; it also implements log.WithLogger and log.WithSkipCallers so the SDK
// can add the workflow's tags and report its callers' lines.
type Logger struct {
	z *zap.Logger
}

var (
	_ log.Logger          = (*Logger)(nil)
	_ log.WithLogger      = (*Logger)(nil)
	_ log.WithSkipCallers = (*Logger)(nil)
)

// New returns a log.Logger backed by z. The SDK calls the logger through one wrapper of its own, so a caller skip
// of one frame makes zap's caller field point at the code that logged.
func New(z *zap.Logger) *Logger {
	return &Logger{z: z.WithOptions(zap.AddCallerSkip(1))}
}

// Zap returns the underlying zap logger.
func (l *Logger) Zap() *zap.Logger { return l.z }

// Debug logs at debug level; keyvals are alternating keys and values.
func (l *Logger) Debug(msg string, keyvals ...any) { l.z.Debug(msg, fields(keyvals)...) }

// Info logs at info level.
func (l *Logger) Info(msg string, keyvals ...any) { l.z.Info(msg, fields(keyvals)...) }

// Warn logs at warn level.
func (l *Logger) Warn(msg string, keyvals ...any) { l.z.Warn(msg, fields(keyvals)...) }

// Error logs at error level.
func (l *Logger) Error(msg string, keyvals ...any) { l.z.Error(msg, fields(keyvals)...) }

// With returns a logger that adds keyvals to every line.
func (l *Logger) With(keyvals ...any) log.Logger {
	return &Logger{z: l.z.With(fields(keyvals)...)}
}

// WithCallerSkip returns a logger that skips depth more stack frames when reporting the caller.
func (l *Logger) WithCallerSkip(depth int) log.Logger {
	return &Logger{z: l.z.WithOptions(zap.AddCallerSkip(depth))}
}

// fields turns alternating keys and values into zap fields. A key that is not a string is printed; a missing
// last value is reported rather than dropped, so a malformed call still shows everything it was given.
func fields(keyvals []any) []zap.Field {
	if len(keyvals) == 0 {
		return nil
	}
	out := make([]zap.Field, 0, (len(keyvals)+1)/2)
	for i := 0; i < len(keyvals); i += 2 {
		key, ok := keyvals[i].(string)
		if !ok {
			key = fmt.Sprint(keyvals[i])
		}
		if i+1 == len(keyvals) {
			out = append(out, zap.Any("!BADKEY", keyvals[i]))
			break
		}
		if err, isErr := keyvals[i+1].(error); isErr {
			out = append(out, zap.NamedError(key, err))
			continue
		}
		out = append(out, zap.Any(key, keyvals[i+1]))
	}
	return out
}

package main

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

func TestImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"ghcr.io/stefanprodan/podinfo:6.0.1":           "6.0.1",
		"localhost:5000/podinfo":                       "latest",
		"localhost:5000/podinfo:6.1.0":                 "6.1.0",
		"podinfo@sha256:abc":                           "latest",
		"ghcr.io/stefanprodan/podinfo:6.0.0@sha256:ab": "6.0.0",
		"podinfo:bad$tag":                              "latest",
	} {
		require.Equal(t, want, imageTag(image), image)
	}
}

func TestContainerPortAndArgs(t *testing.T) {
	c := corev1.Container{
		Command: []string{"./podinfo", "--port=9898", "--port-metrics=9797", "--level", "info", "--random-error"},
		Args:    []string{"--data-path", "/data", "--ui-message=hi"},
		Ports:   []corev1.ContainerPort{{Name: "grpc", ContainerPort: 9999}, {Name: "http", ContainerPort: 9898}},
	}
	require.EqualValues(t, 9898, containerPort(c))
	require.EqualValues(t, 9898, containerPort(corev1.Container{}))
	require.Equal(t, []string{"--port-metrics=9797", "--level", "info", "--random-error", "--ui-message=hi"}, passThroughArgs(c))
}

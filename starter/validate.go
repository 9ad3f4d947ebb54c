package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/catalog"
)

func newValidateCmd() *cobra.Command {
	var file string
	opts := v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()}
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check Canary, MetricTemplate and AlertProvider documents and show what each rollout will do",
		Long: "Loads one or many YAML/JSON documents (--- separated; - reads standard input), applies Flagger's " +
			"defaults and checks every field. Prints one line per document and exits 0, or prints every problem " +
			"with its field path and exits 2.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return &exitError{code: exitBadInput, err: errors.New("validate: -f FILE is required (- for standard input)")}
			}
			var set *v1beta1.Set
			var err error
			if file == "-" {
				set, err = v1beta1.Load(cmd.InOrStdin(), "<stdin>", opts)
			} else {
				set, err = v1beta1.LoadFile(file, opts)
			}
			if err != nil {
				return &exitError{code: exitBadInput, err: err}
			}
			for _, w := range set.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			printSummary(cmd.OutOrStdout(), set)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "file with the documents (- for standard input)")
	cmd.Flags().BoolVar(&opts.RequireTemplates, "require-templates", false,
		"every templateRef must name a MetricTemplate in the file (always checked when the file has any)")
	cmd.Flags().BoolVar(&opts.RequireAlertProviders, "require-alert-providers", false,
		"every alert providerRef must name an AlertProvider in the file (always checked when the file has any)")
	return cmd
}

// printSummary writes one line per document: kind, namespace/name and what it does.
func printSummary(w io.Writer, set *v1beta1.Set) {
	for _, d := range set.Documents {
		switch {
		case d.Canary != nil:
			c := d.Canary
			fmt.Fprintf(w, "Canary %s/%s provider=%s strategy=%s schedule: %s\n",
				c.Namespace, c.Name, c.Spec.Provider, c.Strategy(), c.Schedule())
		case d.MetricTemplate != nil:
			m := d.MetricTemplate
			fmt.Fprintf(w, "MetricTemplate %s/%s provider=%s\n", m.Namespace, m.Name, m.Spec.Provider.Type)
		case d.AlertProvider != nil:
			p := d.AlertProvider
			fmt.Fprintf(w, "AlertProvider %s/%s type=%s\n", p.Namespace, p.Name, p.Spec.Type)
		}
	}
}

// Command podnet is the lab's pod network: it watches the pods that kube-scheduler
// places on the lab's fake (kwok) node and runs one podinfo process per running
// pod, inside the lab's network namespace, bound to the pod's IP and container
// port. podinfo reports the pod image's tag as its version. The process of a
// deleted pod is stopped (SIGTERM, as a kubelet would). kwok gives pods their IPs
// and readiness; kube-controller-manager fills Services' EndpointSlices from them,
// so routers reach these processes as they would reach real pods.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the lab API server")
		node       = flag.String("node", "lab-node-0", "name of the fake node whose pods run here")
		netns      = flag.String("netns", "canaryflow-lab", "network namespace the pod processes run in")
		podinfo    = flag.String("podinfo", "", "command that prints the path of a podinfo binary for an image tag (lab/podinfo.sh)")
		dir        = flag.String("dir", "", "directory for the pods' logs and data")
	)
	flag.Parse()
	if *podinfo == "" || *dir == "" {
		log.Fatal("podnet: --podinfo and --dir are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("podnet: kubeconfig: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("podnet: client: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	n := &podnet{
		netns:   *netns,
		podinfo: *podinfo,
		dir:     *dir,
		procs:   map[types.UID]*proc{},
		byIP:    map[string]*proc{},
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", *node).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { n.sync(obj) },
		UpdateFunc: func(_, obj any) { n.sync(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				n.stop(p.UID, "deleted")
			}
		},
	})
	if err != nil {
		log.Fatalf("podnet: %v", err)
	}
	factory.Start(ctx.Done())
	log.Printf("podnet: watching pods on node %s, running them in netns %s", *node, *netns)
	<-ctx.Done()
	factory.Shutdown()
	n.stopAll()
	log.Print("podnet: stopped")
}

type proc struct {
	uid  types.UID
	name string // namespace/name
	ip   string
	cmd  *exec.Cmd
	done chan struct{}
}

type podnet struct {
	netns, podinfo, dir string

	mu    sync.Mutex
	procs map[types.UID]*proc // running or stopping, by pod
	byIP  map[string]*proc    // the process bound to an IP, until it exits
}

// sync starts the process of a running pod or stops the one of a pod that is
// terminating.
func (n *podnet) sync(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		n.stop(p.UID, "terminating")
		return
	}
	if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.Spec.HostNetwork || len(p.Spec.Containers) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.procs[p.UID]; ok {
		return
	}
	if err := n.start(p); err != nil {
		log.Printf("podnet: %s/%s: %v", p.Namespace, p.Name, err)
	}
}

// start runs the pod's process; n.mu is held.
func (n *podnet) start(p *corev1.Pod) error {
	ip := p.Status.PodIP
	name := p.Namespace + "/" + p.Name
	// kwok recycles IPs at once: a process still draining on this IP belongs
	// to a deleted pod and must not answer for the new one.
	if old, ok := n.byIP[ip]; ok {
		log.Printf("podnet: %s: IP %s still held by %s; killing it", name, ip, old.name)
		_ = old.cmd.Process.Signal(syscall.SIGKILL)
		n.mu.Unlock()
		select {
		case <-old.done:
		case <-time.After(5 * time.Second):
		}
		n.mu.Lock()
		if _, ok := n.procs[p.UID]; ok {
			return nil
		}
	}
	c := p.Spec.Containers[0]
	tag := imageTag(c.Image)
	bin, err := exec.Command(n.podinfo, tag).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("podinfo binary for tag %s: %v: %s", tag, err, ee.Stderr)
		}
		return fmt.Errorf("podinfo binary for tag %s: %v", tag, err)
	}
	port := containerPort(c)
	data := filepath.Join(n.dir, string(p.UID))
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("ip", "-n", n.netns, "addr", "replace", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
		return fmt.Errorf("adding %s to netns %s: %v: %s", ip, n.netns, err, out)
	}
	args := []string{"--net=/run/netns/" + n.netns, "--", strings.TrimSpace(string(bin))}
	args = append(args, passThroughArgs(c)...)
	args = append(args,
		"--host="+ip,
		fmt.Sprintf("--port=%d", port),
		"--data-path="+data,
		"--cert-path="+filepath.Join(data, "cert"),
		"--config-path="+data,
		"--ui-path="+data,
	)
	logf, err := os.OpenFile(filepath.Join(n.dir, p.Namespace+"_"+p.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = data
	cmd.Env = append(os.Environ(), podEnv(c, name)...)
	// Should podnet die, its pods die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	pr := &proc{uid: p.UID, name: name, ip: ip, cmd: cmd, done: make(chan struct{})}
	n.procs[p.UID] = pr
	n.byIP[ip] = pr
	log.Printf("podnet: %s: started podinfo %s on %s:%d (pid %d)", name, tag, ip, port, cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		if n.procs[pr.uid] == pr {
			delete(n.procs, pr.uid)
		}
		if n.byIP[ip] == pr {
			delete(n.byIP, ip)
			_ = exec.Command("ip", "-n", n.netns, "addr", "del", ip+"/32", "dev", "lo").Run()
		}
		n.mu.Unlock()
		close(pr.done)
		log.Printf("podnet: %s: podinfo on %s exited: %v", name, ip, err)
	}()
	return nil
}

// stop sends SIGTERM to a pod's process (podinfo drains for a few seconds),
// then SIGKILL if it is still there after 10 s.
func (n *podnet) stop(uid types.UID, why string) {
	n.mu.Lock()
	pr, ok := n.procs[uid]
	if ok {
		// Forget the pod (a later event for it does not restart it); the IP
		// stays held until the process exits.
		delete(n.procs, uid)
		n.procs[uid+"/stopping"] = pr
	}
	n.mu.Unlock()
	if !ok {
		return
	}
	log.Printf("podnet: %s: %s; stopping pid %d", pr.name, why, pr.cmd.Process.Pid)
	_ = pr.cmd.Process.Signal(syscall.SIGTERM)
	go func() {
		select {
		case <-pr.done:
		case <-time.After(10 * time.Second):
			_ = pr.cmd.Process.Signal(syscall.SIGKILL)
		}
		n.mu.Lock()
		delete(n.procs, uid+"/stopping")
		n.mu.Unlock()
	}()
}

func (n *podnet) stopAll() {
	n.mu.Lock()
	var all []*proc
	for _, pr := range n.procs {
		all = append(all, pr)
	}
	n.mu.Unlock()
	for _, pr := range all {
		_ = pr.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(8 * time.Second)
	for _, pr := range all {
		select {
		case <-pr.done:
		case <-deadline:
			_ = pr.cmd.Process.Signal(syscall.SIGKILL)
			<-pr.done
		}
	}
}

// imageTag returns the tag of an image reference ("latest" when it has none).
func imageTag(image string) string {
	image, _, _ = strings.Cut(image, "@")
	tag := "latest"
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		tag = image[i+1:]
	}
	if !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(tag) {
		tag = "latest"
	}
	return tag
}

// containerPort is the container's port named http, else its first port, else 9898.
func containerPort(c corev1.Container) int32 {
	for _, p := range c.Ports {
		if p.Name == "http" {
			return p.ContainerPort
		}
	}
	if len(c.Ports) > 0 {
		return c.Ports[0].ContainerPort
	}
	return 9898
}

// Flags the lab sets itself (or that name paths inside a container image).
var ownFlags = map[string]bool{
	"host": true, "port": true, "data-path": true, "cert-path": true, "config-path": true, "ui-path": true,
	"config": true, "ui-logo": true, "version": true, "v": true,
}

// passThroughArgs keeps the podinfo flags of the container's command and args
// (such as --random-error or --port-metrics), except those the lab sets.
func passThroughArgs(c corev1.Container) []string {
	var out []string
	all := append(append([]string{}, c.Command...), c.Args...)
	for i := 0; i < len(all); i++ {
		a := all[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if ownFlags[name] {
			if !hasValue && i+1 < len(all) && !strings.HasPrefix(all[i+1], "-") {
				i++
			}
			continue
		}
		out = append(out, a)
		if !hasValue && i+1 < len(all) && !strings.HasPrefix(all[i+1], "-") {
			out = append(out, all[i+1])
			i++
		}
	}
	return out
}

// podEnv is the container's literal environment, with podinfo's UI message
// defaulting to the pod's name so answers tell pods apart.
func podEnv(c corev1.Container, name string) []string {
	env := []string{"PODINFO_UI_MESSAGE=" + name}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	return env
}

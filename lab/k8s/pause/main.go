// Command pause is the process of the lab's offline pause (sandbox) image (issue 15 item 3): it holds the pod's
// namespaces, reaps the children it inherits as PID 1 and exits on SIGINT/SIGTERM. Standard library only, built
// static (CGO_ENABLED=0) by lab/k8s/vmnode.py.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	children := make(chan os.Signal, 8)
	signal.Notify(children, syscall.SIGCHLD)
	for {
		select {
		case <-stop:
			os.Exit(0)
		case <-children:
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}

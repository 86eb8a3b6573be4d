//go:build unix

package sensors

import (
	"os/exec"
	"syscall"
)

// killProcessGroup makes cmd the leader of a new process group and has
// its cancellation kill the whole group, so that a timed-out shell script
// does not leave its children (a hung sleep, a stuck i2cget) behind.
func killProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

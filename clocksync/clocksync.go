// Package clocksync tells whether the system's wall clock can be trusted
// to timestamp readings. Boards without a battery-backed real-time clock
// (most Raspberry Pis) boot with the time of their last shutdown, or
// 1970, and keep it until NTP corrects it; readings taken before that are
// flagged, not dropped.
//
// The clock is unsynchronised when it reads earlier than the build of
// edged (a time that certainly passed), or when the machine has no RTC and
// the kernel reports its clock unsynchronised (adjtimex STA_UNSYNC, which
// NTP and systemd-timesyncd clear once they have set the time). A machine
// with an RTC is trusted once it is past the build time.
package clocksync

import (
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Checker decides whether the clock is synchronised. Its zero value is not
// usable; build it with New.
type Checker struct {
	now          func() time.Time
	floor        time.Time
	hasRTC       bool
	kernelSynced func() bool
}

// Options injects the parts of a Checker that tests replace.
type Options struct {
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// Floor is a time known to have passed (the build time).
	Floor time.Time
	// SysRoot is where /sys is; empty means "/". Tests use a fake tree.
	SysRoot string
	// KernelSynced reports the kernel's view; nil asks adjtimex.
	KernelSynced func() bool
}

// New returns a Checker. Whether the machine has an RTC is read once.
func New(o Options) *Checker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SysRoot == "" {
		o.SysRoot = "/"
	}
	if o.KernelSynced == nil {
		o.KernelSynced = kernelSynced
	}
	rtcs, _ := filepath.Glob(filepath.Join(o.SysRoot, "sys/class/rtc/rtc*"))
	return &Checker{now: o.Now, floor: o.Floor, hasRTC: len(rtcs) > 0, kernelSynced: o.KernelSynced}
}

// Synced reports whether the clock can be trusted now.
func (c *Checker) Synced() bool {
	if c.now().Before(c.floor) {
		return false
	}
	return c.hasRTC || c.kernelSynced()
}

// HasRTC reports whether the machine has a real-time clock.
func (c *Checker) HasRTC() bool { return c.hasRTC }

// kernelSynced asks the kernel whether NTP has disciplined the clock. Where
// adjtimex is not allowed (some containers), the answer is yes: the host
// keeps the time.
func kernelSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return true
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}

package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where a run happened, so that numbers from different
// machines (or a noisy moment of the same one) are not compared blindly.
// Fields that cannot be read (outside Linux) are left empty.
type Machine struct {
	Hostname   string `json:"hostname"`
	NProc      int    `json:"nproc"`       // CPUs this process may use
	OnlineCPUs string `json:"online_cpus"` // /sys/devices/system/cpu/online
	Kernel     string `json:"kernel"`      // "Linux 6.1.0-18-amd64 #1 SMP …"
	CPUModel   string `json:"cpu_model"`
	GoVersion  string `json:"go_version"`
	// LoadAvgStart and LoadAvgEnd are /proc/loadavg's 1, 5 and 15 minute
	// load averages before and after the run: a busy machine shows here.
	LoadAvgStart []float64 `json:"loadavg_start"`
	LoadAvgEnd   []float64 `json:"loadavg_end"`
}

// describeMachine reads the machine description, with the load average as
// of now in LoadAvgStart.
func describeMachine() Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvgStart: loadAvg()}
	m.Hostname, _ = os.Hostname()
	m.OnlineCPUs = readTrim("/sys/devices/system/cpu/online")
	m.Kernel = strings.TrimSpace(strings.Join([]string{
		readTrim("/proc/sys/kernel/ostype"), readTrim("/proc/sys/kernel/osrelease"), readTrim("/proc/sys/kernel/version"),
	}, " "))
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(b)
	}
	return m
}

// cpuModel returns the first "model name" of /proc/cpuinfo's contents (x86),
// else its first "Model" or "CPU part" (arm64).
func cpuModel(cpuinfo []byte) string {
	var fallback string
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "model name":
			return v
		case "Model", "CPU part":
			if fallback == "" {
				fallback = v
			}
		}
	}
	return fallback
}

// loadAvg returns the 1, 5 and 15 minute load averages, or nil.
func loadAvg() []float64 {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return nil
	}
	out := make([]float64, 3)
	for i := range out {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil
		}
		out[i] = v
	}
	return out
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// setRuntimeMemoryLimit makes the Go runtime's soft memory limit the broker's
// memory limit, so that the garbage collector works harder as the process
// nears it instead of letting the heap grow to twice what is live (GOGC).
// The broker's memory alarm (broker.Config.ProcessMemory) keeps the live heap
// below the limit, so the collector always has room to work. GOMEMLIMIT, if
// set, wins: it is the operator's explicit choice.
func setRuntimeMemoryLimit(limit int64, log *slog.Logger) {
	if limit <= 0 {
		return
	}
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		log.Info("GOMEMLIMIT set: the Go runtime's soft memory limit is left to it", "GOMEMLIMIT", env)
		return
	}
	debug.SetMemoryLimit(limit)
}

// parseMemoryLimit reads "2GiB", "512MB", "1048576" or "40%" (of RAM); "" is 40% of RAM.
func parseMemoryLimit(s string) (int64, error) {
	if s == "" {
		s = "40%"
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || f <= 0 || f > 100 {
			return 0, fmt.Errorf("bad percentage %q", s)
		}
		total, err := totalRAM()
		if err != nil {
			return 0, err
		}
		return int64(float64(total) * f / 100), nil
	}
	return parseSize(s)
}

// parseSize reads "2GiB", "512MB" or "1048576" (bytes).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// totalRAM reads MemTotal from /proc/meminfo.
func totalRAM() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("cannot read total RAM (give an absolute limit): %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("MemTotal not found in /proc/meminfo")
}

// parseSegmentSize reads a --segment-size: a size from 1 MiB to 1 GiB.
func parseSegmentSize(s string) (int64, error) {
	n, err := parseSize(s)
	if err == nil && (n < 1<<20 || n > 1<<30) {
		err = fmt.Errorf("%s is not between 1MiB and 1GiB", s)
	}
	return n, err
}

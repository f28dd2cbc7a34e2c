package supervisor

import (
	"slices"
	"time"
)

// restartSamples is how many recent lane starts the measured restart cost
// is the maximum of.
const restartSamples = 16

// childUp is called when c reached RUNNING; s.mu held. A worker lane joins
// its core in the dispatcher, and its start time feeds the restart cost
// admission charges when a kill leaves a core without a free lane.
func (s *Supervisor) childUp(c *child) {
	s.broadcast()
	if c.core < 0 {
		return
	}
	s.starts = append(s.starts, time.Since(c.started))
	if len(s.starts) > restartSamples {
		s.starts = s.starts[len(s.starts)-restartSamples:]
	}
	s.disp.SetRestartCost(slices.Max(s.starts))
	s.disp.LaneUp(c.core, c.lane, c.lp)
	if !s.ready {
		s.ready = true
		for _, w := range s.workers {
			s.ready = s.ready && w.state == Running
		}
	}
}

// childDown is called when c's process is gone; s.mu held. A worker
// lane's job, if it had one not yet answered, is answered as lost (a kill
// at its deadline was answered already); the core goes on with its other
// lanes.
func (s *Supervisor) childDown(c *child, why string) {
	s.broadcast()
	if c.core < 0 {
		s.bench.lost(why)
		return
	}
	if c.lp != nil {
		s.disp.LaneDown(c.core, c.lane, c.lp, c.name+" exited while running this call ("+why+")")
		c.lp = nil
	}
	s.coreDownIfUnwanted(c, "its lanes were stopped")
}

// coreDownIfUnwanted takes c's core out of service when none of its lanes
// is wanted any more (stopped, or FATAL): its queued calls go to other
// cores or are answered; s.mu held.
func (s *Supervisor) coreDownIfUnwanted(c *child, why string) {
	if c.core < 0 {
		return
	}
	for li := range s.cfg.Lanes {
		if s.lane(c.core, li).wanted {
			return
		}
	}
	s.disp.CoreDown(c.core, c.group+" "+why)
}

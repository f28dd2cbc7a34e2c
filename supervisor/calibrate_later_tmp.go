package supervisor

import "context"

// maxBackgroundCalibrations bounds the calibrations started for calls.
const maxBackgroundCalibrations = 4

// calibrateLater measures cl in benchd in the background, at most once
// per key at a time and at most maxBackgroundCalibrations at once; beyond
// that the request is dropped (a later call asks again). It never blocks.
func (s *Supervisor) calibrateLater(cl *call) bool {
	s.mu.Lock()
	_, busy := s.calibrating[cl.key]
	full := len(s.calibrating) >= maxBackgroundCalibrations
	s.mu.Unlock()
	if busy || full {
		return false
	}
	go s.calibrate(context.Background(), cl)
	return true
}

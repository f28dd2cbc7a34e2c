package sched

import "math"

// queue is one core's EDF queue of deadline jobs: a treap ordered by
// (Deadline, ID), whose nodes live in one slice and refer to each other by
// index, so that a steady stream of arrivals and departures allocates
// nothing.
//
// Every node keeps two aggregates of its subtree, taken as if the subtree's
// jobs ran alone back to back from time 0:
//
//	sum = the sum of their estimates
//	mn  = the minimum over them of due - (their finish time)
//
// i.e. the latest start of that run for which all of them are on time. Both
// compose from the children without looking further down (see update), so
// insertions, removals and rotations keep them exact in O(log n), and one
// walk from the root answers the two questions of the admission test (see
// around): how much work runs before a new job, and how late the jobs after
// it may start.
type queue struct {
	nodes []node  // nodes[0] is the nil node: sum 0, mn +inf
	free  []int32 // indices of unused nodes
	root  int32
	n     int
	rng   uint64 // xorshift state for the priorities
}

// node is one queued job. due is the time by which it must finish: its
// deadline, or infinity for a job whose own lateness is not checked (an
// unverified estimate, or a stopped job already past its estimate).
type node struct {
	job         Job
	due         int64
	sum, mn     int64
	left, right int32
	prio        uint32
}

// infinity is the aggregate mn of an empty subtree.
const infinity = math.MaxInt64

// before reports whether a sorts before b in EDF order: earlier deadline
// first, then smaller ID.
func before(ad int64, aid uint64, bd int64, bid uint64) bool {
	return ad < bd || (ad == bd && aid < bid)
}

// init makes the nil node. seed varies the priorities between queues.
func (q *queue) init(seed uint64) {
	q.nodes = append(q.nodes[:0], node{mn: infinity})
	q.free = q.free[:0]
	q.root, q.n = 0, 0
	q.rng = seed | 1
}

// len returns the number of queued jobs.
func (q *queue) len() int { return q.n }

// total returns the sum of the queued estimates.
func (q *queue) total() int64 { return q.nodes[q.root].sum }

// latest returns the latest start of the queue, run back to back, for which
// every queued job is on time: infinity if the queue is empty.
func (q *queue) latest() int64 { return q.nodes[q.root].mn }

// update recomputes i's aggregates from its children. A job finishes at the
// end of its left subtree plus its own estimate; the right subtree starts
// there.
func (q *queue) update(i int32) {
	x := &q.nodes[i]
	l, r := &q.nodes[x.left], &q.nodes[x.right]
	end := l.sum + x.job.Estimate
	x.sum = end + r.sum
	x.mn = l.mn
	if x.due != infinity {
		x.mn = min(x.mn, x.due-end)
	}
	if r.mn != infinity {
		x.mn = min(x.mn, r.mn-end)
	}
}

// around answers, for a job (d, id) that is not queued: prefix, the sum of
// the estimates of the queued jobs that run before it; after, the latest
// start of the queue (without it) for which every job that runs after it is
// on time, or infinity if none does.
func (q *queue) around(d int64, id uint64) (prefix, after int64) {
	after = infinity
	for i := q.root; i != 0; {
		x := &q.nodes[i]
		l := &q.nodes[x.left]
		if before(d, id, x.job.Deadline, x.job.ID) {
			// x and its right subtree run after the job.
			end := prefix + l.sum + x.job.Estimate
			if x.due != infinity {
				after = min(after, x.due-end)
			}
			if r := &q.nodes[x.right]; r.mn != infinity {
				after = min(after, r.mn-end)
			}
			i = x.left
		} else {
			prefix += l.sum + x.job.Estimate
			i = x.right
		}
	}
	return prefix, after
}

// insert enqueues j, which must not be queued already, to finish by due
// (infinity: unchecked).
func (q *queue) insert(j Job, due int64) {
	var i int32
	if k := len(q.free); k > 0 {
		i = q.free[k-1]
		q.free = q.free[:k-1]
	} else {
		i = int32(len(q.nodes))
		q.nodes = append(q.nodes, node{})
	}
	// xorshift64: the priorities only need to be independent of the keys.
	q.rng ^= q.rng << 13
	q.rng ^= q.rng >> 7
	q.rng ^= q.rng << 17
	q.nodes[i] = node{job: j, due: due, prio: uint32(q.rng >> 32)}
	q.update(i)
	q.root = q.insertAt(q.root, i)
	q.n++
}

// insertAt inserts node n into subtree i and returns the new subtree root.
func (q *queue) insertAt(i, n int32) int32 {
	if i == 0 {
		return n
	}
	x, nj := &q.nodes[i], &q.nodes[n].job
	if q.nodes[n].prio > x.prio {
		l, r := q.split(i, nj.Deadline, nj.ID)
		q.nodes[n].left, q.nodes[n].right = l, r
		q.update(n)
		return n
	}
	if before(nj.Deadline, nj.ID, x.job.Deadline, x.job.ID) {
		x.left = q.insertAt(x.left, n)
	} else {
		x.right = q.insertAt(x.right, n)
	}
	q.update(i)
	return i
}

// split splits subtree i into the jobs that sort before (d, id) and the rest.
func (q *queue) split(i int32, d int64, id uint64) (lo, hi int32) {
	if i == 0 {
		return 0, 0
	}
	x := &q.nodes[i]
	if before(x.job.Deadline, x.job.ID, d, id) {
		lo, hi = q.split(x.right, d, id)
		x.right = lo
		q.update(i)
		return i, hi
	}
	lo, hi = q.split(x.left, d, id)
	x.left = hi
	q.update(i)
	return lo, i
}

// merge joins subtrees a and b, every job of a sorting before every job of b.
func (q *queue) merge(a, b int32) int32 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	case q.nodes[a].prio > q.nodes[b].prio:
		q.nodes[a].right = q.merge(q.nodes[a].right, b)
		q.update(a)
		return a
	default:
		q.nodes[b].left = q.merge(a, q.nodes[b].left)
		q.update(b)
		return b
	}
}

// remove dequeues the job (d, id) and reports whether it was queued.
func (q *queue) remove(d int64, id uint64) bool {
	var ok bool
	q.root, ok = q.removeAt(q.root, d, id)
	return ok
}

func (q *queue) removeAt(i int32, d int64, id uint64) (int32, bool) {
	if i == 0 {
		return 0, false
	}
	x := &q.nodes[i]
	if x.job.ID == id && x.job.Deadline == d {
		r := q.merge(x.left, x.right)
		q.release(i)
		return r, true
	}
	var ok bool
	if before(d, id, x.job.Deadline, x.job.ID) {
		x.left, ok = q.removeAt(x.left, d, id)
	} else {
		x.right, ok = q.removeAt(x.right, d, id)
	}
	if ok {
		q.update(i)
	}
	return i, ok
}

// pop dequeues and returns the earliest job; the queue must not be empty.
func (q *queue) pop() Job {
	var m int32
	q.root, m = q.popAt(q.root)
	j := q.nodes[m].job
	q.release(m)
	return j
}

// popAt unlinks the leftmost node of subtree i (not empty) and returns the
// new subtree root and that node.
func (q *queue) popAt(i int32) (root, m int32) {
	x := &q.nodes[i]
	if x.left == 0 {
		return x.right, i
	}
	x.left, m = q.popAt(x.left)
	q.update(i)
	return i, m
}

// release returns node i to the free list.
func (q *queue) release(i int32) {
	q.nodes[i] = node{}
	q.free = append(q.free, i)
	q.n--
}

// first returns the earliest queued job; the queue must not be empty.
func (q *queue) first() Job {
	i := q.root
	for q.nodes[i].left != 0 {
		i = q.nodes[i].left
	}
	return q.nodes[i].job
}

// last returns the latest queued job; the queue must not be empty.
func (q *queue) last() Job {
	i := q.root
	for q.nodes[i].right != 0 {
		i = q.nodes[i].right
	}
	return q.nodes[i].job
}

// appendJobs appends the queued jobs to dst in EDF order.
func (q *queue) appendJobs(dst []Job) []Job {
	return q.appendAt(dst, q.root)
}

func (q *queue) appendAt(dst []Job, i int32) []Job {
	if i == 0 {
		return dst
	}
	dst = q.appendAt(dst, q.nodes[i].left)
	dst = append(dst, q.nodes[i].job)
	return q.appendAt(dst, q.nodes[i].right)
}

// clear empties the queue, keeping its memory.
func (q *queue) clear() {
	clear(q.nodes)
	q.init(q.rng)
}

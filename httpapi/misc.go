package httpapi

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
	"golang.org/x/text/unicode/norm"

	"github.com/hyper-sched/hyper-sched/apierr"
)

type okAnswer struct {
	Status string `json:"status"`
	Result any    `json:"result,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func (h *handler) status(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, h.b.Status())
}

func (h *handler) uname(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	name := r.URL.Query().Get("uname")
	if name == "" {
		writeError(w, errorf(apierr.BadRequest, "give the task name: /uname?uname=NAME"))
		return
	}
	if len(name) > MaxTaskNameLen {
		writeError(w, errorf(apierr.BadRequest, "uname is %d bytes, over the limit of %d of a task_unique_name", len(name), MaxTaskNameLen))
		return
	}
	tl, err := h.b.Timeline(name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, okAnswer{Status: "Success", Result: tl})
}

func (h *handler) warmStart(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, okAnswer{Status: "Success", Result: h.b.WarmStart()})
}

func (h *handler) modules(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, okAnswer{Status: "Success", Result: h.b.Modules()})
}

func (h *handler) module(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	m, err := h.b.Module(moduleName(p))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, okAnswer{Status: "Success", Result: m})
}

func (h *handler) deleteModule(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	if err := h.b.DeleteModule(moduleName(p)); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, okAnswer{Status: "Success"})
}

// moduleName is the :name of a /modules route in NFC, the one form module
// names are registered in: "café" typed in either form is the same module.
func moduleName(p httprouter.Params) string {
	return norm.NFC.String(p.ByName("name"))
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ok, detail := h.b.Healthy()
	if !ok {
		writeError(w, errorf(apierr.WorkerLost, "not ready: %s", detail))
		return
	}
	writeJSON(w, http.StatusOK, okAnswer{Status: "Success", Detail: detail})
}

package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/hyper-sched/hyper-sched/apierr"
)

// maxFormField bounds a non-file form field.
const maxFormField = 64 << 10

// maxModulesPerForm bounds the files of one register form.
const maxModulesPerForm = 16

// DecodeRegister reads a multipart register form: every file part is a
// module named by its field name; the fields export_func, param_type,
// params and replace say what to calibrate and whether to replace.
func DecodeRegister(r *http.Request, maxUpload int64) (RegisterSpec, error) {
	var spec RegisterSpec
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" {
		return spec, errorf(apierr.BadRequest, "register wants a multipart/form-data body, as curl -F \"fib.wasm=@fib.wasm\" sends")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return spec, errorf(apierr.BadRequest, "read form: %v", err)
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return spec, errorf(apierr.BadRequest, "read form: %v", err)
		}
		name := p.FormName()
		if p.FileName() == "" {
			if err := spec.field(name, p); err != nil {
				return spec, err
			}
			continue
		}
		if len(spec.Modules) == maxModulesPerForm {
			return spec, errorf(apierr.TooLarge, "at most %d modules per form", maxModulesPerForm)
		}
		data, err := io.ReadAll(io.LimitReader(p, maxUpload+1))
		if err != nil {
			return spec, errorf(apierr.BadRequest, "read %s: %v", name, err)
		}
		if int64(len(data)) > maxUpload {
			return spec, errorf(apierr.TooLarge, "module %q is larger than %d bytes", name, maxUpload)
		}
		spec.Modules = append(spec.Modules, Upload{Name: name, Wasm: data})
	}
	return spec, nil
}

func (spec *RegisterSpec) field(name string, p *multipart.Part) error {
	b, err := io.ReadAll(io.LimitReader(p, maxFormField+1))
	if err != nil || len(b) > maxFormField {
		return errorf(apierr.BadRequest, "form field %q is unreadable or longer than %d bytes", name, maxFormField)
	}
	v := strings.TrimSpace(string(b))
	switch name {
	case "export_func":
		spec.Export = v
	case "param_type":
		spec.ParamTypes = jsonOrString(v)
	case "params":
		spec.Params = jsonList(v)
	case "replace":
		spec.Replace = v == "true" || v == "1" || v == "yes"
	default:
		return errorf(apierr.BadRequest,
			"form field %q is neither a module file (send it as %s=@file.wasm) nor one of export_func, param_type, params, replace", name, name)
	}
	return nil
}

// jsonOrString takes a form value that is JSON (a list) or a bare word.
func jsonOrString(v string) json.RawMessage {
	if strings.HasPrefix(v, "[") {
		return json.RawMessage(v)
	}
	b, _ := json.Marshal(v)
	return b
}

// jsonList takes params as a JSON list or a comma-separated list.
func jsonList(v string) json.RawMessage {
	if strings.HasPrefix(v, "[") {
		return json.RawMessage(v)
	}
	var items []string
	if v != "" {
		for _, s := range strings.Split(v, ",") {
			items = append(items, strings.TrimSpace(s))
		}
	}
	b, _ := json.Marshal(items)
	return b
}

type registerAnswer struct {
	Status string `json:"status"`
	URL    string `json:"url"`
	moduleAnswer
	Modules []moduleAnswer `json:"modules"`
}

type moduleAnswer struct {
	WasmName     string  `json:"wasm_name"`
	SHA256       string  `json:"sha256"`
	Size         int     `json:"size"`
	Unchanged    bool    `json:"unchanged"`
	Exports      any     `json:"exports"`
	Expected     string  `json:"expected_execution_time,omitempty"`
	ExpectedMs   float64 `json:"expected_execution_time_ms,omitempty"`
	CompileMs    float64 `json:"compile_ms"`
	Calibrations any     `json:"calibrations"`
}

func (h *handler) register(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	r.Body = http.MaxBytesReader(w, r.Body, maxModulesPerForm*(h.o.MaxUpload+maxFormField))
	spec, err := DecodeRegister(r, h.o.MaxUpload)
	if err != nil {
		writeError(w, err)
		return
	}
	regs, err := h.b.Register(r.Context(), spec)
	if err != nil {
		writeError(w, err)
		return
	}
	out := registerAnswer{Status: "Success", URL: h.o.URL + "/call"}
	for _, m := range regs {
		a := moduleAnswer{WasmName: m.Name, SHA256: m.SHA256, Size: m.Size, Unchanged: m.Unchanged,
			Exports: m.Exports, CompileMs: ms(m.Compile), Calibrations: m.Calibrations}
		if m.Expected > 0 {
			a.Expected, a.ExpectedMs = CeilMs(m.Expected), ms(m.Expected)
		}
		out.Modules = append(out.Modules, a)
	}
	out.moduleAnswer = out.Modules[0]
	writeJSON(w, http.StatusOK, out)
}

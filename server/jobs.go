package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

// The /api/jobs routes (ComfyUI v0.18+ comfy_execution/jobs.py): one view over the running,
// pending and finished prompts.

const (
	jobPending    = "pending"
	jobInProgress = "in_progress"
	jobCompleted  = "completed"
	jobFailed     = "failed"
	jobCancelled  = "cancelled"
)

var jobStatuses = []string{jobPending, jobInProgress, jobCompleted, jobFailed, jobCancelled}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// isCanonicalUUID is ComfyUI's validate_job_id: a UUID in canonical lowercase hyphenated form.
func isCanonicalUUID(s string) bool { return uuidRe.MatchString(s) }

var (
	threeDExt = []string{".obj", ".fbx", ".gltf", ".glb", ".usdz"}
	textExt   = []string{".txt", ".md", ".json"}
)

func hasExt(name string, exts []string) bool {
	l := strings.ToLower(name)
	for _, e := range exts {
		if strings.HasSuffix(l, e) {
			return true
		}
	}
	return false
}

func strField(o *ojson.Object, k string) string {
	if o == nil {
		return ""
	}
	v, _ := o.Get(k)
	s, _ := v.(string)
	return s
}

// normalizeOutputItem turns a 3D file name string into a file dict; other non-dicts give nil.
func normalizeOutputItem(item any) *ojson.Object {
	switch t := item.(type) {
	case string:
		if hasExt(t, threeDExt) {
			return ojson.NewObject().Set("filename", t).Set("type", "output").Set("subfolder", "").Set("mediaType", "3d")
		}
	case *ojson.Object:
		return t
	}
	return nil
}

func isPreviewable(mediaType string, item *ojson.Object) bool {
	switch mediaType {
	case "images", "video", "audio", "3d", "text":
		return true
	}
	if f := strField(item, "format"); strings.HasPrefix(f, "video/") || strings.HasPrefix(f, "audio/") {
		return true
	}
	fn := strField(item, "filename")
	return hasExt(fn, threeDExt) || hasExt(fn, textExt)
}

func isTextPreview(mediaType string, item *ojson.Object) bool {
	return mediaType == "text" || hasExt(strField(item, "filename"), textExt)
}

// outputsSummary is get_outputs_summary: the number of output items and the preview item.
func outputsSummary(outputs *ojson.Object) (int, *ojson.Object) {
	count := 0
	var preview, fallback, textFile, textFallback *ojson.Object
	for _, nodeID := range outputs.Keys() {
		nv, _ := outputs.Get(nodeID)
		nodeOut, ok := nv.(*ojson.Object)
		if !ok {
			continue
		}
		for _, media := range nodeOut.Keys() {
			iv, _ := nodeOut.Get(media)
			items, ok := iv.([]any)
			if media == "animated" || !ok {
				continue
			}
			for _, item := range items {
				dict, isDict := item.(*ojson.Object)
				if !isDict {
					dict = normalizeOutputItem(item)
					if dict == nil {
						if media == "text" && preview == nil && textFallback == nil && item != nil {
							textFallback = textPreview(item).Set("nodeId", nodeID).Set("mediaType", media)
						}
						continue
					}
				}
				count++
				if preview != nil || !isPreviewable(media, dict) {
					continue
				}
				enriched := dict.Clone().Set("nodeId", nodeID)
				if _, ok := dict.Get("mediaType"); !ok {
					enriched.Set("mediaType", media)
				}
				switch {
				case isTextPreview(media, dict):
					if textFile == nil {
						textFile = enriched
					}
				case strField(dict, "type") == "output":
					preview = enriched
				case fallback == nil:
					fallback = enriched
				}
			}
		}
	}
	for _, p := range []*ojson.Object{preview, fallback, textFile, textFallback} {
		if p != nil {
			return count, p
		}
	}
	return count, nil
}

func textPreview(item any) *ojson.Object {
	var s string
	switch t := item.(type) {
	case string:
		s = t
	case []any:
		if len(t) > 0 {
			if first, ok := t[0].(string); ok {
				s = first
			} else {
				b, _ := ojson.Marshal(t[0])
				s = string(b)
			}
		}
	default:
		b, _ := ojson.Marshal(t)
		s = string(b)
	}
	const maxText = 1024
	r := []rune(s)
	if len(r) <= maxText {
		return ojson.NewObject().Set("content", s)
	}
	return ojson.NewObject().Set("content", string(r[:maxText])).Set("truncated", true)
}

func countPreviewable(outputs *ojson.Object) int {
	n := 0
	for _, nodeID := range outputs.Keys() {
		nv, _ := outputs.Get(nodeID)
		nodeOut, ok := nv.(*ojson.Object)
		if !ok {
			continue
		}
		for _, media := range nodeOut.Keys() {
			iv, _ := nodeOut.Get(media)
			items, ok := iv.([]any)
			if media == "animated" || !ok {
				continue
			}
			for _, item := range items {
				if d := normalizeOutputItem(item); d != nil && isPreviewable(media, d) {
					n++
				}
			}
		}
	}
	return n
}

func normalizeOutputs(outputs *ojson.Object) *ojson.Object {
	out := ojson.NewObject()
	for _, nodeID := range outputs.Keys() {
		nv, _ := outputs.Get(nodeID)
		nodeOut, ok := nv.(*ojson.Object)
		if !ok {
			out.Set(nodeID, nv)
			continue
		}
		nn := ojson.NewObject()
		for _, media := range nodeOut.Keys() {
			iv, _ := nodeOut.Get(media)
			items, ok := iv.([]any)
			if media == "animated" || !ok {
				nn.Set(media, iv)
				continue
			}
			norm := []any{}
			for _, item := range items {
				if item == nil {
					continue
				}
				if d := normalizeOutputItem(item); d != nil {
					norm = append(norm, d)
				} else {
					norm = append(norm, item)
				}
			}
			nn.Set(media, norm)
		}
		out.Set(nodeID, nn)
	}
	return out
}

// jobMeta reads create_time and workflow_id from extra_data.
func jobMeta(extra *ojson.Object) (createTime, workflowID any) {
	if extra == nil {
		return nil, nil
	}
	createTime, _ = extra.Get("create_time")
	if pi, ok := extra.Get("extra_pnginfo"); ok {
		if po, ok := pi.(*ojson.Object); ok {
			if wf, ok := po.Get("workflow"); ok {
				if wo, ok := wf.(*ojson.Object); ok {
					workflowID, _ = wo.Get("id")
				}
			}
		}
	}
	return createTime, workflowID
}

// setPruned sets k unless v is nil (prune_dict).
func setPruned(o *ojson.Object, k string, v any) {
	if v == nil {
		return
	}
	if ov, ok := v.(*ojson.Object); ok && ov == nil {
		return
	}
	o.Set(k, v)
}

func jobFromQueue(it *queueItem, status string) *ojson.Object {
	ct, wid := jobMeta(it.extraObj)
	j := ojson.NewObject().Set("id", it.promptID).Set("status", status).Set("priority", it.numberValue())
	setPruned(j, "create_time", ct)
	j.Set("outputs_count", 0).Set("previewable_outputs_count", 0)
	setPruned(j, "workflow_id", wid)
	return j
}

// jobFromHistory is normalize_history_item over a history entry.
func jobFromHistory(id string, entry *ojson.Object, includeOutputs bool) *ojson.Object {
	var priority, prompt any
	var extra *ojson.Object
	if pv, ok := entry.Get("prompt"); ok {
		if tuple, ok := pv.([]any); ok && len(tuple) >= 4 {
			priority, prompt = tuple[0], tuple[2]
			switch e := tuple[3].(type) {
			case *ojson.Object:
				extra = e
			case json.RawMessage:
				if v, err := ojson.Decode(e); err == nil {
					extra, _ = v.(*ojson.Object)
				}
			}
		}
	}
	ct, wid := jobMeta(extra)
	var statusInfo *ojson.Object
	if sv, ok := entry.Get("status"); ok {
		statusInfo, _ = sv.(*ojson.Object)
	}
	outputs := ojson.NewObject()
	if ov, ok := entry.Get("outputs"); ok {
		if oo, ok := ov.(*ojson.Object); ok {
			outputs = oo
		}
	}
	var start, end, execErr any
	interrupted := false
	statusStr := ""
	if statusInfo != nil {
		statusStr = strField(statusInfo, "status_str")
		mv, _ := statusInfo.Get("messages")
		msgs, _ := mv.([]any)
		for _, m := range msgs {
			pair, ok := m.([]any)
			if !ok || len(pair) < 2 {
				continue
			}
			name, _ := pair[0].(string)
			data, ok := pair[1].(*ojson.Object)
			if !ok {
				continue
			}
			ts, _ := data.Get("timestamp")
			switch name {
			case "execution_start":
				start = ts
			case "execution_success", "execution_error", "execution_interrupted":
				end = ts
				if name == "execution_error" {
					execErr = data
				} else if name == "execution_interrupted" {
					interrupted = true
				}
			}
		}
	}
	status := jobCompleted
	if statusStr == "error" {
		status = jobFailed
		if interrupted {
			status = jobCancelled
		}
	}
	count, preview := outputsSummary(outputs)
	j := ojson.NewObject().Set("id", id).Set("status", status)
	setPruned(j, "priority", priority)
	setPruned(j, "create_time", ct)
	setPruned(j, "execution_start_time", start)
	setPruned(j, "execution_end_time", end)
	setPruned(j, "execution_error", execErr)
	j.Set("outputs_count", count).Set("previewable_outputs_count", countPreviewable(outputs))
	if preview != nil {
		j.Set("preview_output", preview)
	}
	setPruned(j, "workflow_id", wid)
	if includeOutputs {
		j.Set("outputs", normalizeOutputs(outputs))
		if statusInfo != nil {
			j.Set("execution_status", statusInfo)
		} else {
			j.Set("execution_status", nil)
		}
		j.Set("workflow", ojson.NewObject().Set("prompt", prompt).Set("extra_data", extra))
	}
	return j
}

func numberOf(v any) float64 {
	switch t := v.(type) {
	case json.Number:
		f, _ := t.Float64()
		return f
	case int64:
		return float64(t)
	case int:
		return float64(t)
	case float64:
		return t
	}
	return 0
}

func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var filter map[string]bool
	if sp := q.Get("status"); sp != "" {
		filter = map[string]bool{}
		var bad []string
		for _, st := range strings.Split(sp, ",") {
			st = strings.ToLower(strings.TrimSpace(st))
			if st == "" {
				continue
			}
			known := false
			for _, k := range jobStatuses {
				known = known || k == st
			}
			if !known {
				bad = append(bad, st)
			}
			filter[st] = true
		}
		if len(bad) > 0 {
			writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", fmt.Sprintf("Invalid status value(s): %s. Valid values: %s", strings.Join(bad, ", "), strings.Join(jobStatuses, ", "))))
			return
		}
		if len(filter) == 0 {
			filter = nil
		}
	}
	want := func(st string) bool { return filter == nil || filter[st] }
	sortBy := strings.ToLower(q.Get("sort_by"))
	if sortBy == "" {
		sortBy = "created_at"
	}
	if sortBy != "created_at" && sortBy != "execution_duration" {
		writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "sort_by must be 'created_at' or 'execution_duration'"))
		return
	}
	order := strings.ToLower(q.Get("sort_order"))
	if order == "" {
		order = "desc"
	}
	if order != "asc" && order != "desc" {
		writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "sort_order must be 'asc' or 'desc'"))
		return
	}
	var limit any
	lim := -1
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "limit must be an integer"))
			return
		}
		if n <= 0 {
			writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "limit must be a positive integer"))
			return
		}
		lim, limit = n, n
	}
	offset := 0
	if q.Has("offset") {
		n, err := strconv.Atoi(q.Get("offset"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "offset must be an integer"))
			return
		}
		offset = max(n, 0)
	}
	workflowID := q.Get("workflow_id")

	var jobs []*ojson.Object
	s.qmu.Lock()
	if want(jobInProgress) && s.running != nil {
		jobs = append(jobs, jobFromQueue(s.running, jobInProgress))
	}
	queued := map[string]bool{}
	if s.running != nil {
		queued[s.running.promptID] = true
	}
	for _, it := range s.sortedPending() {
		queued[it.promptID] = true
		if want(jobPending) {
			jobs = append(jobs, jobFromQueue(it, jobPending))
		}
	}
	s.qmu.Unlock()
	if want(jobCompleted) || want(jobFailed) || want(jobCancelled) {
		rows, err := s.st.historyJobs(r.Context())
		if err != nil {
			serverError(w, s.log, err)
			return
		}
		for _, row := range rows {
			v, err := ojson.Decode(row)
			if err != nil {
				continue
			}
			j, ok := v.(*ojson.Object)
			if !ok || queued[strField(j, "id")] {
				continue
			}
			if want(strField(j, "status")) {
				jobs = append(jobs, j)
			}
		}
	}
	if workflowID != "" {
		kept := jobs[:0]
		for _, j := range jobs {
			if wid, ok := j.Get("workflow_id"); ok && fmt.Sprint(wid) == workflowID {
				kept = append(kept, j)
			}
		}
		jobs = kept
	}
	key := func(j *ojson.Object) float64 {
		if sortBy == "execution_duration" {
			s, _ := j.Get("execution_start_time")
			e, _ := j.Get("execution_end_time")
			if numberOf(s) != 0 && numberOf(e) != 0 {
				return numberOf(e) - numberOf(s)
			}
			return 0
		}
		c, _ := j.Get("create_time")
		return numberOf(c)
	}
	sort.SliceStable(jobs, func(a, b int) bool {
		if order == "desc" {
			return key(jobs[a]) > key(jobs[b])
		}
		return key(jobs[a]) < key(jobs[b])
	})
	total := len(jobs)
	if offset > 0 {
		if offset >= len(jobs) {
			jobs = nil
		} else {
			jobs = jobs[offset:]
		}
	}
	if lim > 0 && len(jobs) > lim {
		jobs = jobs[:lim]
	}
	list := make([]any, len(jobs))
	for i, j := range jobs {
		list[i] = j
	}
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("jobs", list).Set("pagination",
		ojson.NewObject().Set("offset", offset).Set("limit", limit).Set("total", total).Set("has_more", offset+len(jobs) < total)))
}

func (s *Server) handleJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "job_id is required"))
		return
	}
	s.qmu.Lock()
	var j *ojson.Object
	if s.running != nil && s.running.promptID == id {
		j = jobFromQueue(s.running, jobInProgress)
	} else if it, ok := s.byID[id]; ok {
		j = jobFromQueue(it, jobPending)
	}
	s.qmu.Unlock()
	if j == nil {
		entry, ok, err := s.st.historyGet(r.Context(), id)
		if err != nil {
			serverError(w, s.log, err)
			return
		}
		if ok {
			v, err := ojson.Decode(entry)
			if err != nil {
				serverError(w, s.log, fmt.Errorf("history entry %s: %w", id, err))
				return
			}
			if eo, ok := v.(*ojson.Object); ok {
				j = jobFromHistory(id, eo, true)
			}
		}
	}
	if j == nil {
		writeJSON(w, http.StatusNotFound, ojson.NewObject().Set("error", "Job not found"))
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) handleJobCancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "job_id is required"))
		return
	}
	ok, err := s.cancelPrompt(r.Context(), id)
	if err != nil {
		serverError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("cancelled", ok))
}

func (s *Server) handleJobsCancel(w http.ResponseWriter, r *http.Request) {
	body, ok := readJSONBody(w, r)
	if !ok {
		writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "Request body must be valid JSON"))
		return
	}
	var ids []any
	if obj, isObj := body.(*ojson.Object); isObj {
		v, _ := obj.Get("job_ids")
		ids, _ = v.([]any)
	}
	if ids == nil {
		writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "job_ids must be a list"))
		return
	}
	invalid := []any{}
	var valid []string
	for _, v := range ids {
		s, isStr := v.(string)
		if !isStr || !isCanonicalUUID(s) {
			if isStr {
				invalid = append(invalid, s)
			} else {
				b, _ := ojson.MarshalPython(v)
				invalid = append(invalid, string(b))
			}
			continue
		}
		valid = append(valid, s)
	}
	if len(invalid) > 0 {
		writeJSON(w, http.StatusBadRequest, ojson.NewObject().Set("error", "job_ids contains invalid id(s)").Set("invalid_ids", invalid))
		return
	}
	cancelled := false
	for _, id := range valid {
		ok, err := s.cancelPrompt(r.Context(), id)
		if err != nil {
			serverError(w, s.log, err)
			return
		}
		cancelled = cancelled || ok
	}
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("cancelled", cancelled))
}

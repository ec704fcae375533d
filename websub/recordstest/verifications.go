// Package recordstest holds checks every websub.Records backend passes.
package recordstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hubbub/hubbub/websub"
)

// Verifications checks the verification part of websub.Records: Put
// replaces by id, Delete removes (and a missing id is no error), List
// pages in id order; reopen (nil: not checked) returns a new Records on
// the same storage, which must hold what was stored.
func Verifications(t *testing.T, r websub.Records, reopen func() websub.Records) {
	t.Helper()
	ctx := context.Background()
	if got, err := r.ListVerifications(ctx, "", 10); err != nil || len(got) != 0 {
		t.Fatalf("empty ListVerifications = %v, %v", got, err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var want []websub.Verification
	for i := range 5 {
		topic, cb := fmt.Sprintf("t%d", i), "http://cb.example/"+fmt.Sprint(i)
		v := websub.Verification{ID: websub.SubscriptionID(topic, cb), Topic: topic, Callback: cb, Mode: websub.ModeSubscribe,
			State: websub.VerifyPending, Requested: now, Updated: now}
		if err := r.PutVerification(ctx, v); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}
	// Put replaces.
	want[2].State, want[2].Attempts, want[2].LastError, want[2].NextAttempt = websub.VerifyFailed, 3, "callback answered 404", now.Add(time.Minute)
	if err := r.PutVerification(ctx, want[2]); err != nil {
		t.Fatal(err)
	}
	// Delete removes; deleting what is not there is no error.
	if err := r.DeleteVerification(ctx, want[4].ID); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteVerification(ctx, "nothing-here"); err != nil {
		t.Fatalf("DeleteVerification of a missing id: %v", err)
	}
	want = want[:4]
	byID := map[string]websub.Verification{}
	for _, v := range want {
		byID[v.ID] = v
	}
	check := func(r websub.Records) {
		t.Helper()
		var got []websub.Verification
		after := ""
		for range 10 {
			page, err := r.ListVerifications(ctx, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if len(page) < 3 {
				break
			}
			after = page[len(page)-1].ID
		}
		if len(got) != len(want) {
			t.Fatalf("ListVerifications paged: %d verifications, want %d: %+v", len(got), len(want), got)
		}
		for i, v := range got {
			if i > 0 && got[i-1].ID >= v.ID {
				t.Fatalf("ListVerifications out of id order: %s before %s", got[i-1].ID, v.ID)
			}
			w := byID[v.ID]
			if v.Topic != w.Topic || v.Callback != w.Callback || v.State != w.State || v.Attempts != w.Attempts ||
				v.LastError != w.LastError || !v.NextAttempt.Equal(w.NextAttempt) || !v.Updated.Equal(w.Updated) {
				t.Fatalf("verification %s = %+v, want %+v", v.ID, v, w)
			}
		}
	}
	check(r)
	if reopen != nil {
		check(reopen())
	}
}

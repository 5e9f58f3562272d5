/* SPDX-License-Identifier: GPL-2.0 */
/*
 * aiopipe tracepoints: the life of an asynchronous request (docs/async.md,
 * "Tracepoints").  A channel is named by its id (as in its ends' fdinfo), a
 * request by its id within the channel: "chan=3 req=17" names one request
 * in every event of its life, and is never reused (an address would be).
 *
 *   aiopipe_queue     a request could not finish at submission and waits
 *   aiopipe_wake      a wakeup reached a waiting retry request: kicked or
 *                     filtered out by its poll key
 *   aiopipe_retry     a retry ran in the worker: what it moved
 *   aiopipe_cancel    io_cancel(), io_destroy() or exit asked to cancel
 *   aiopipe_complete  the result handed to the kiocb
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM aiopipe

#if !defined(AIOPIPE_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define AIOPIPE_TRACE_H

#include <linux/tracepoint.h>

#define aiopipe_show_dir(write)	((write) ? "write" : "read")
#define aiopipe_show_engine(direct)	((direct) ? "direct" : "retry")

TRACE_DEFINE_ENUM(RQ_NEW);
TRACE_DEFINE_ENUM(RQ_QUEUED);
TRACE_DEFINE_ENUM(RQ_KICKED);
TRACE_DEFINE_ENUM(RQ_BUSY);
TRACE_DEFINE_ENUM(RQ_DONE);

TRACE_EVENT(aiopipe_queue,
	TP_PROTO(const struct aiopipe_req *req, size_t count),
	TP_ARGS(req, count),
	TP_STRUCT__entry(
		__field(u64, chan)
		__field(u64, req)
		__field(size_t, count)
		__field(size_t, done)
		__field(bool, write)
		__field(bool, direct)
	),
	TP_fast_assign(
		__entry->chan = req->chan->id;
		__entry->req = req->id;
		__entry->count = count;
		__entry->done = req->done;
		__entry->write = req->write;
		__entry->direct = req->ops->engine == AIOPIPE_ENGINE_DIRECT;
	),
	TP_printk("chan=%llu req=%llu %s engine=%s count=%zu done=%zu",
		  __entry->chan, __entry->req, aiopipe_show_dir(__entry->write),
		  aiopipe_show_engine(__entry->direct), __entry->count,
		  __entry->done)
);

TRACE_EVENT(aiopipe_wake,
	TP_PROTO(const struct aiopipe_req *req, __poll_t key, bool filtered),
	TP_ARGS(req, key, filtered),
	TP_STRUCT__entry(
		__field(u64, chan)
		__field(u64, req)
		__field(unsigned int, key)
		__field(bool, filtered)
	),
	TP_fast_assign(
		__entry->chan = req->chan->id;
		__entry->req = req->id;
		__entry->key = (__force unsigned int)key;
		__entry->filtered = filtered;
	),
	TP_printk("chan=%llu req=%llu key=%#x %s", __entry->chan,
		  __entry->req, __entry->key,
		  __entry->filtered ? "filtered" : "kicked")
);

TRACE_EVENT(aiopipe_retry,
	TP_PROTO(const struct aiopipe_req *req, size_t moved, bool finished,
		 bool futile),
	TP_ARGS(req, moved, finished, futile),
	TP_STRUCT__entry(
		__field(u64, chan)
		__field(u64, req)
		__field(size_t, moved)
		__field(size_t, done)
		__field(bool, finished)
		__field(bool, futile)
	),
	TP_fast_assign(
		__entry->chan = req->chan->id;
		__entry->req = req->id;
		__entry->moved = moved;
		__entry->done = req->done;
		__entry->finished = finished;
		__entry->futile = futile;
	),
	TP_printk("chan=%llu req=%llu moved=%zu done=%zu finished=%d futile=%d",
		  __entry->chan, __entry->req, __entry->moved, __entry->done,
		  __entry->finished, __entry->futile)
);

TRACE_EVENT(aiopipe_cancel,
	TP_PROTO(const struct aiopipe_req *req),
	TP_ARGS(req),
	TP_STRUCT__entry(
		__field(u64, chan)
		__field(u64, req)
		__field(size_t, done)
		__field(int, state)
	),
	TP_fast_assign(
		__entry->chan = req->chan->id;
		__entry->req = req->id;
		__entry->done = req->done;
		__entry->state = req->state;
	),
	TP_printk("chan=%llu req=%llu done=%zu state=%s", __entry->chan,
		  __entry->req, __entry->done,
		  __print_symbolic(__entry->state,
				   { RQ_NEW, "new" }, { RQ_QUEUED, "queued" },
				   { RQ_KICKED, "kicked" }, { RQ_BUSY, "busy" },
				   { RQ_DONE, "done" }))
);

TRACE_EVENT(aiopipe_complete,
	TP_PROTO(const struct aiopipe_req *req),
	TP_ARGS(req),
	TP_STRUCT__entry(
		__field(u64, chan)
		__field(u64, req)
		__field(long, res)
		__field(bool, write)
		__field(bool, direct)
	),
	TP_fast_assign(
		__entry->chan = req->chan->id;
		__entry->req = req->id;
		__entry->res = req->res;
		__entry->write = req->write;
		__entry->direct = req->ops->engine == AIOPIPE_ENGINE_DIRECT;
	),
	TP_printk("chan=%llu req=%llu %s engine=%s res=%ld", __entry->chan,
		  __entry->req, aiopipe_show_dir(__entry->write),
		  aiopipe_show_engine(__entry->direct), __entry->res)
);

#endif /* AIOPIPE_TRACE_H */

/* This part must be outside the include guard. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE aiopipe_trace
#include <trace/define_trace.h>

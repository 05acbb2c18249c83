// liubai execution tracer: the process tree of one pipeline run, what it executed and opened.
//
// Rendered by ebpf/program.py (render_program), which prepends the #defines below; compiled by bcc.
// Only tracepoint arguments and bpf_get_current_*/bpf_ktime_* calls are read (never struct
// task_struct: its layout is not known for every kernel we run on). Times are CLOCK_BOOTTIME nanoseconds, the clock of
// /proc/<pid>/stat's starttime, so ids built from user space and from the kernel agree.
//
// Process-tree tracking happens here: `tracked` is seeded with the root pid by user space, a child is
// added at fork, removed at exit; events of processes outside the tree never reach user space.
//
// Events with a path or argv are built in a per-CPU scratch slot and sent with only the bytes used, so
// full-length paths (PATH_MAX) cost ring-buffer space only when they are long. User space keeps an exact
// model of each descriptor table from the fd events (close, dup*, fcntl, close_range, close-on-exec).
//
// Node mode (NODE_MODE 1): no root pid; a task that forks or execs while one of its cgroup ancestors is a
// pod root (v2 cgroup ids user space puts in `pod_roots`) joins the tree on its own, with an adopt event
// first. Host processes outside pod cgroups never produce events. Where pod cgroups are not visible in
// the v2 hierarchy (pure cgroup v1), user space sets `node_probe` and every untracked exec sends a
// probe for /proc to decide; those processes are tracked from that moment on.
//
// Expected defines: MAX_ARGS, ARG_LEN, ARGS_BUF, ARGS_PER_CALL, PATH_LEN, RINGBUF_PAGES, MAX_PROCS,
// WAKEUP_AFTER, NODE_MODE, NODE_LEVELS, CGROUP_PATH_LEN.

#include <linux/capability.h>  // the capset tracepoint's argument types

#define EV_FORK 1
#define EV_EXEC 2
#define EV_EXEC_ARGS 3
#define EV_EXEC_FAIL 4
#define EV_OPEN 5
#define EV_EXIT 6
#define EV_CHDIR 7
#define EV_FD 8
#define EV_URING 9
#define EV_CRED 10
#define EV_ADOPT 11
#define EV_CGROUP 12
#define EV_RENAME 13

// adopt reasons
#define ADOPT_FORK 1
#define ADOPT_EXEC 2
#define ADOPT_PROBE 3

#define LOST_RINGBUF 0
#define LOST_PROCS 1

#define CLONE_THREAD_FLAG 0x00010000
#define AT_FDCWD_VALUE -100
#define O_CLOEXEC_FLAG 0x80000
#define EBADF_VALUE 9

// open kinds
#define OPEN_OPENAT 0
#define OPEN_OPENAT2 1
#define OPEN_CREAT 2
#define OPEN_BY_HANDLE 3
#define OPEN_MEMFD 4

// chdir kinds
#define CD_CHDIR 0
#define CD_FCHDIR 1
#define CD_CHROOT 2

// fd operations
#define FD_CLOSE 1
#define FD_DUP 2
#define FD_SETFD 3
#define FD_CLOSE_RANGE 4
#define FD_UNSHARE 5

// credential calls
#define CR_SETUID 1
#define CR_SETREUID 2
#define CR_SETRESUID 3
#define CR_SETFSUID 4
#define CR_CAPSET 5

// exec args flags
#define ARGS_TRUNCATED 1
#define ARGS_UNREADABLE 2
#define ARGS_CUT 4

struct proc_t {
    u64 start_ns;
    u32 ppid;
    u32 _pad;
};

struct hdr_t {
    u32 type;
    u32 tgid;
    u32 tid;
    u32 uid;
    u64 ts;
    u64 start_ns;
};

struct fork_ev {
    struct hdr_t h;
    u32 child;
    u32 clone_flags;
    u64 child_start_ns;
};

struct exec_ev {
    struct hdr_t h;
    u32 old_pid;
    u32 _pad;
    char comm[16];
    char filename[PATH_LEN];
};

struct exec_args_ev {
    struct hdr_t h;
    u32 argc;
    u32 flags;
    s32 dfd;
    u32 at_flags;
    char filename[PATH_LEN];
    char args[ARGS_BUF + ARG_LEN];
};

struct exec_fail_ev {
    struct hdr_t h;
    s32 err;
    u32 _pad;
};

struct open_ev {
    struct hdr_t h;
    s32 fd;
    s32 dfd;
    u32 flags;
    u32 kind;
    char path[PATH_LEN];
};

struct exit_ev {
    struct hdr_t h;
    s32 code;
    u32 has_code;
    char comm[16];
};

struct chdir_ev {
    struct hdr_t h;
    s32 kind;
    s32 fd;
    char path[PATH_LEN];
};

struct fd_ev {
    struct hdr_t h;
    u32 op;
    s32 fd;
    s32 newfd;
    u32 arg;
    u32 last;
    u32 _pad;
};

struct cred_ev {
    struct hdr_t h;
    u32 op;
    s32 ret;
    u32 a;
    u32 b;
    u32 c;
    u32 _pad;
    u64 cap_eff;
};

struct uring_ev {
    struct hdr_t h;
    s32 fd;
    u32 _pad;
};

struct adopt_ev {
    struct hdr_t h;
    u64 cgroup_id;
    u32 reason;
    u32 _pad;
};

// A successful rename/renameat/renameat2: both names as given, the new one at ``new_at`` in ``paths``.
struct rename_ev {
    struct hdr_t h;
    s32 olddfd;
    s32 newdfd;
    u32 flags;
    u32 new_at;
    char paths[2 * PATH_LEN];
};

// A v2 cgroup made (``made`` 1) or removed on the node, with its path below the hierarchy's root.
struct cgroup_ev {
    struct hdr_t h;
    u64 id;
    u32 made;
    u32 _pad;
    char path[CGROUP_PATH_LEN];
};

struct pending_t {
    u64 ptr;
    s32 dfd;
    u32 flags;
    u32 kind;
    u32 _pad;
};

struct pending_rename_t {
    u64 old;
    u64 new;
    s32 olddfd;
    s32 newdfd;
    u32 flags;
    u32 _pad;
};

struct pending_fd_t {
    u32 op;
    s32 fd;
    s32 newfd;
    u32 arg;
    u32 last;
    u32 _pad;
};

struct pending_cred_t {
    u32 op;
    u32 a;
    u32 b;
    u32 c;
    u64 cap_eff;
};

BPF_HASH(tracked, u32, struct proc_t, MAX_PROCS);
BPF_HASH(new_tasks, u32, u64, MAX_PROCS);
BPF_HASH(exit_codes, u32, s32, MAX_PROCS);
BPF_HASH(fatal_sent, u32, s32, MAX_PROCS);
BPF_HASH(pending_open, u32, struct pending_t, MAX_PROCS);
BPF_HASH(pending_chdir, u32, struct pending_t, MAX_PROCS);
BPF_HASH(pending_fd, u32, struct pending_fd_t, MAX_PROCS);
BPF_HASH(pending_cred, u32, struct pending_cred_t, MAX_PROCS);
BPF_HASH(uring_seen, u32, u8, MAX_PROCS);
#if !NODE_MODE
BPF_HASH(pending_rename, u32, struct pending_rename_t, MAX_PROCS);
BPF_PERCPU_ARRAY(scratch_rename, struct rename_ev, 1);
#endif
BPF_PERCPU_ARRAY(scratch_open, struct open_ev, 1);
BPF_PERCPU_ARRAY(scratch_exec, struct exec_ev, 1);
BPF_PERCPU_ARRAY(scratch_args, struct exec_args_ev, 1);
BPF_PERCPU_ARRAY(scratch_chdir, struct chdir_ev, 1);
BPF_PERCPU_ARRAY(lost, u64, 2);
BPF_PERCPU_ARRAY(since_wakeup, u64, 1);  // bytes sent since this CPU last woke the reader (node: events)
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);

static __always_inline void count_lost(int which) {
    u32 key = which;
    u64 *v = lost.lookup(&key);
    if (v)
        (*v)++;
}

// Waking the reader for every event costs a context switch per event; instead the reader polls on a
// short timeout and each CPU wakes it only once it has sent WAKEUP_AFTER bytes since its last wakeup (a
// share of the buffer, so a burst never fills it), and at each exec: /proc is read while the process
// lives (a limit on exec wakeups lost exec hashes on a loaded machine). Large batches cost the reader far
// less per event than many small ones. Node mode counts events instead (WAKEUP_AFTER of them), and an
// exec is one of them, as the agent was measured with.
#if NODE_MODE
#define WAKEUP_COST(size) 1
#define EXEC_WAKES 0
#else
#define WAKEUP_COST(size) (size)
#define EXEC_WAKES 1
#endif

static __always_inline u64 wake_flags(u64 size, int now) {
    u32 key = 0;
    u64 *n = since_wakeup.lookup(&key);
    if (!n)
        return 0;
    *n += WAKEUP_COST(size);
    if (!now && *n < WAKEUP_AFTER)
        return BPF_RB_NO_WAKEUP;
    *n = 0;
    return BPF_RB_FORCE_WAKEUP;
}

// The tracked process of the current task (NULL: outside the tree); fills pid/tid.
static __always_inline struct proc_t *current_proc(u32 *tgid, u32 *tid) {
    u64 id = bpf_get_current_pid_tgid();
    *tgid = id >> 32;
    *tid = (u32)id;
    return tracked.lookup(tgid);
}

static __always_inline void fill_hdr(struct hdr_t *h, u32 type, u32 tgid, u32 tid, u64 start_ns) {
    h->type = type;
    h->tgid = tgid;
    h->tid = tid;
    h->uid = (u32)bpf_get_current_uid_gid();
    h->ts = bpf_ktime_get_boot_ns();
    h->start_ns = start_ns;
}

#if NODE_MODE
BPF_HASH(pod_roots, u64, u8, 256);
BPF_ARRAY(node_probe, u32, 1);

// Whether the current task's cgroup lies below a pod root (the root itself holds no pod's process).
static __always_inline int in_pod(void) {
    u64 own = bpf_get_current_cgroup_id();
#pragma unroll
    for (int level = 1; level <= NODE_LEVELS; level++) {
        u64 id = bpf_get_current_ancestor_cgroup_id(level);
        if (id == 0 || id == own)
            return 0;
        if (pod_roots.lookup(&id))
            return 1;
    }
    return 0;
}

static __always_inline void send_adopt(u32 tgid, u32 tid, u32 reason) {
    struct adopt_ev *e = events.ringbuf_reserve(sizeof(struct adopt_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        return;
    }
    fill_hdr(&e->h, EV_ADOPT, tgid, tid, 0);
    e->cgroup_id = bpf_get_current_cgroup_id();
    e->reason = reason;
    e->_pad = 0;
    events.ringbuf_submit(e, wake_flags(sizeof(*e), 0));
}

// Every v2 cgroup's id and path as it is made (and dropped as it is removed), in ring-buffer order: a
// runtime makes a container's cgroup before any process enters it, so user space knows the container
// of every adopt event it reads, even one read after the container and its cgroup are gone.
static __always_inline int send_cgroup(int root, u64 id, int loc, void *args, u32 made) {
    if (root != 0)  // hierarchy 0 is the v2 one; v1 hierarchies number their cgroups on their own
        return 0;
    struct cgroup_ev *e = events.ringbuf_reserve(sizeof(struct cgroup_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        return 0;
    }
    fill_hdr(&e->h, EV_CGROUP, 0, 0, 0);
    e->id = id;
    e->made = made;
    e->_pad = 0;
    bpf_probe_read_kernel_str(e->path, sizeof(e->path), (char *)args + (loc & 0xFFFF));
    events.ringbuf_submit(e, 0);
    return 0;
}

TRACEPOINT_PROBE(cgroup, cgroup_mkdir) {
    return send_cgroup(args->root, args->id, args->data_loc_path, args, 1);
}

TRACEPOINT_PROBE(cgroup, cgroup_rmdir) {
    return send_cgroup(args->root, args->id, args->data_loc_path, args, 0);
}

// An untracked task in a pod cgroup joins the tree. Its start time is not readable here (no
// task_struct): it is 0 until user space fills it from /proc and fixes the events sent meanwhile.
static __always_inline struct proc_t *node_adopt(u32 tgid, u32 tid, u32 reason, int probe) {
    if (!in_pod()) {
        if (probe) {
            u32 zero = 0;
            u32 *probe = node_probe.lookup(&zero);
            if (probe && *probe)
                send_adopt(tgid, tid, ADOPT_PROBE);
        }
        return NULL;
    }
    struct proc_t p = {};
    if (tracked.update(&tgid, &p) != 0) {
        count_lost(LOST_PROCS);
        return NULL;
    }
    send_adopt(tgid, tid, reason);
    return tracked.lookup(&tgid);
}
#endif

// The tracked process of the current task, adopting it first in node mode where its cgroup is a pod's.
// ``probe``: in probe mode, ask user space about an untracked task outside the v2 pod roots (once per exec).
static __always_inline struct proc_t *current_or_adopt(u32 *tgid, u32 *tid, u32 reason, int probe) {
    struct proc_t *p = current_proc(tgid, tid);
#if NODE_MODE
    if (!p)
        p = node_adopt(*tgid, *tid, reason, probe);
#endif
    return p;
}

// ``size`` clamped to ``max`` in a way the verifier sees (the compiler may otherwise drop the clamp).
static __always_inline u64 bounded(u64 size, u64 max) {
    asm volatile("" : "+r"(size));
    if (size > max)
        size = max;
    asm volatile("" : "+r"(size));
    return size;
}

// Bytes of a string slot actually used (the length bpf_probe_read_*_str returned, NUL included).
static __always_inline u32 str_used(long n, u32 cap) {
    if (n <= 0)
        return 1;
    if (n > cap)
        return cap;
    return (u32)n;
}

// A new task of a tracked process: remember its clone flags, read at fork (threads are not processes).
TRACEPOINT_PROBE(task, task_newtask) {
    u32 tgid, tid;
    if (!current_or_adopt(&tgid, &tid, ADOPT_FORK, 0))
        return 0;
    u32 child = args->pid;
    u64 flags = args->clone_flags;
    new_tasks.update(&child, &flags);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork) {
    u32 tgid, tid;
    struct proc_t *parent = current_or_adopt(&tgid, &tid, ADOPT_FORK, 0);
    if (!parent)
        return 0;
    u32 child = args->child_pid;
    u64 *flags = new_tasks.lookup(&child);
    u64 clone_flags = flags ? *flags : 0;
    new_tasks.delete(&child);
    if (clone_flags & CLONE_THREAD_FLAG)
        return 0;
    struct proc_t p = {};
    p.start_ns = bpf_ktime_get_boot_ns();
    p.ppid = tgid;
    if (tracked.update(&child, &p) != 0) {
        count_lost(LOST_PROCS);
        return 0;
    }
    struct fork_ev *e = events.ringbuf_reserve(sizeof(struct fork_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        return 0;
    }
    fill_hdr(&e->h, EV_FORK, tgid, tid, parent->start_ns);
    e->child = child;
    e->clone_flags = (u32)clone_flags;
    e->child_start_ns = p.start_ns;
    events.ringbuf_submit(e, wake_flags(sizeof(*e), 0));
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec) {
    u32 tgid, tid;
    struct proc_t *p = current_or_adopt(&tgid, &tid, ADOPT_EXEC, 1);
    if (!p)
        return 0;
    exit_codes.delete(&tgid);  // de_thread's SIGKILLs to the old threads are not this process's end
    fatal_sent.delete(&tgid);
    u32 zero = 0;
    struct exec_ev *e = scratch_exec.lookup(&zero);
    if (!e)
        return 0;
    fill_hdr(&e->h, EV_EXEC, tgid, tid, p->start_ns);
    e->old_pid = args->old_pid;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    unsigned short loc = args->data_loc_filename & 0xFFFF;
    long n = bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename), (void *)args + loc);
    u64 size = offsetof(struct exec_ev, filename) + str_used(n, PATH_LEN);
    size = bounded(size, sizeof(struct exec_ev));
    if (events.ringbuf_output(e, size, wake_flags(size, EXEC_WAKES)) != 0)
        count_lost(LOST_RINGBUF);
    return 0;
}

// argv packed as NUL-terminated strings; marked truncated (more than fits), cut (an argument longer
// than ARG_LEN) or unreadable (a page not resident at syscall entry: user space reads /proc then).
// The verifier accepts only a short loop, so ARGS_PER_CALL arguments are read per program and the
// reader tail-calls itself (user space puts read_arg_chunk in arg_chunks[0]) for the next ones.
struct args_state {
    const char *const *argv;
    u32 next;
    u32 off;
};

BPF_PERCPU_ARRAY(args_state, struct args_state, 1);
BPF_PROG_ARRAY(arg_chunks, 1);

static __always_inline void send_exec_args(struct exec_args_ev *e, u32 off) {
    u64 size = offsetof(struct exec_args_ev, args) + off;
    size = bounded(size, sizeof(struct exec_args_ev));
    if (events.ringbuf_output(e, size, wake_flags(size, 0)) != 0)
        count_lost(LOST_RINGBUF);
}

// One argument: 0 to go on, 1 when argv ended (or nothing more fits).
static __always_inline int read_one_arg(struct exec_args_ev *e, struct args_state *st) {
    u32 i = st->next;
    const char *arg = NULL;
    if (bpf_probe_read_user(&arg, sizeof(arg), &st->argv[i]) != 0) {
        e->flags |= ARGS_UNREADABLE | ARGS_TRUNCATED;
        return 1;
    }
    if (!arg)
        return 1;
    if (i >= MAX_ARGS || st->off >= ARGS_BUF) {
        e->flags |= ARGS_TRUNCATED;
        return 1;
    }
    u32 at = st->off & (ARGS_BUF - 1);
    long n = bpf_probe_read_user_str(&e->args[at], ARG_LEN, arg);
    if (n <= 0) {
        e->args[at] = 0;
        e->flags |= ARGS_UNREADABLE;
        n = 1;
    } else if (n >= ARG_LEN) {
        e->flags |= ARGS_CUT;
        n = ARG_LEN;
    }
    st->off = at + (u32)n;
    st->next = i + 1;
    e->argc = i + 1;
    return 0;
}

int read_arg_chunk(void *ctx) {
    u32 zero = 0;
    struct exec_args_ev *e = scratch_args.lookup(&zero);
    struct args_state *st = args_state.lookup(&zero);
    if (!e || !st)
        return 0;
    for (int k = 0; k < ARGS_PER_CALL; k++) {
        if (read_one_arg(e, st)) {
            send_exec_args(e, st->off);
            return 0;
        }
    }
    arg_chunks.call(ctx, 0);
    e->flags |= ARGS_TRUNCATED;  // the tail-call limit was reached
    send_exec_args(e, st->off);
    return 0;
}

static __always_inline int emit_exec_args(
    void *ctx, const char *filename, const char *const *argv, s32 dfd, u32 at_flags) {
    u32 tgid, tid;
    struct proc_t *p = current_or_adopt(&tgid, &tid, ADOPT_EXEC, 0);
    if (!p)
        return 0;
    u32 zero = 0;
    struct exec_args_ev *e = scratch_args.lookup(&zero);
    struct args_state *st = args_state.lookup(&zero);
    if (!e || !st)
        return 0;
    fill_hdr(&e->h, EV_EXEC_ARGS, tgid, tid, p->start_ns);
    e->argc = 0;
    e->flags = 0;
    e->dfd = dfd;
    e->at_flags = at_flags;
    long fn = bpf_probe_read_user_str(&e->filename, sizeof(e->filename), filename);
    if (fn <= 0)
        e->filename[0] = 0;
    st->argv = argv;
    st->next = 0;
    st->off = 0;
    arg_chunks.call(ctx, 0);
    e->flags |= ARGS_UNREADABLE | ARGS_TRUNCATED;  // the reader could not be called: no argv at all
    send_exec_args(e, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    return emit_exec_args(args, args->filename, args->argv, AT_FDCWD_VALUE, 0);
}

TRACEPOINT_PROBE(syscalls, sys_enter_execveat) {
    return emit_exec_args(args, args->filename, args->argv, (s32)args->fd, (u32)args->flags);
}

static __always_inline int emit_exec_fail(long ret) {
    if (ret >= 0)
        return 0;
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    struct exec_fail_ev *e = events.ringbuf_reserve(sizeof(struct exec_fail_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        return 0;
    }
    fill_hdr(&e->h, EV_EXEC_FAIL, tgid, tid, p->start_ns);
    e->err = (s32)-ret;
    events.ringbuf_submit(e, wake_flags(sizeof(*e), 0));
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve) {
    return emit_exec_fail(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat) {
    return emit_exec_fail(args->ret);
}

static __always_inline int remember_open(const char *filename, s32 dfd, u32 flags, u32 kind) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    struct pending_t pend = {};
    pend.ptr = (u64)filename;
    pend.dfd = dfd;
    pend.flags = flags;
    pend.kind = kind;
    pending_open.update(&tid, &pend);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    return remember_open(args->filename, (s32)args->dfd, (u32)args->flags, OPEN_OPENAT);
}

TRACEPOINT_PROBE(syscalls, sys_enter_open) {
    return remember_open(args->filename, AT_FDCWD_VALUE, (u32)args->flags, OPEN_OPENAT);
}

TRACEPOINT_PROBE(syscalls, sys_enter_creat) {
    return remember_open(args->pathname, AT_FDCWD_VALUE, 0101 | 01000, OPEN_CREAT);  // O_CREAT|O_WRONLY|O_TRUNC
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat2) {
    u64 flags = 0;
    bpf_probe_read_user(&flags, sizeof(flags), (void *)args->how);  // struct open_how starts with flags
    return remember_open(args->filename, (s32)args->dfd, (u32)flags, OPEN_OPENAT2);
}

// No path: the handle names an inode on the mount of mountdirfd; user space reads /proc's fd link.
TRACEPOINT_PROBE(syscalls, sys_enter_open_by_handle_at) {
    return remember_open(NULL, (s32)args->mountdirfd, (u32)args->flags, OPEN_BY_HANDLE);
}

// Only successful opens leave the kernel, with the fd they got (user space keeps an fd -> path table
// to resolve later dirfd-relative opens).
static __always_inline int emit_open(long ret) {
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    struct pending_t *pend = pending_open.lookup(&tid);
    if (!pend)
        return 0;
    if (ret < 0) {
        pending_open.delete(&tid);
        return 0;
    }
    u32 zero = 0;
    struct open_ev *e = scratch_open.lookup(&zero);
    if (!e) {
        pending_open.delete(&tid);
        return 0;
    }
    fill_hdr(&e->h, EV_OPEN, tgid, tid, p->start_ns);
    e->fd = (s32)ret;
    e->dfd = pend->dfd;
    e->flags = pend->flags;
    e->kind = pend->kind;
    long n = 0;
    if (pend->ptr)
        n = bpf_probe_read_user_str(&e->path, sizeof(e->path), (const char *)pend->ptr);
    if (n <= 0)
        e->path[0] = 0;
    pending_open.delete(&tid);
    u64 size = offsetof(struct open_ev, path) + str_used(n, PATH_LEN);
    size = bounded(size, sizeof(struct open_ev));
    if (events.ringbuf_output(e, size, wake_flags(size, 0)) != 0)
        count_lost(LOST_RINGBUF);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat) {
    return emit_open(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_open) {
    return emit_open(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_creat) {
    return emit_open(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat2) {
    return emit_open(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_open_by_handle_at) {
    return emit_open(args->ret);
}

// memfd_create: no file access, but its descriptor is what an fexecve of a memfd runs.
TRACEPOINT_PROBE(syscalls, sys_enter_memfd_create) {
    return remember_open(args->uname, AT_FDCWD_VALUE, (u32)args->flags, OPEN_MEMFD);
}

TRACEPOINT_PROBE(syscalls, sys_exit_memfd_create) {
    return emit_open(args->ret);
}

static __always_inline int remember_chdir(const char *path, s32 fd, u32 kind) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    struct pending_t pend = {};
    pend.ptr = (u64)path;
    pend.dfd = fd;
    pend.kind = kind;
    pending_chdir.update(&tid, &pend);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_chdir) {
    return remember_chdir(args->filename, -1, CD_CHDIR);
}

TRACEPOINT_PROBE(syscalls, sys_enter_fchdir) {
    return remember_chdir(NULL, (s32)args->fd, CD_FCHDIR);
}

TRACEPOINT_PROBE(syscalls, sys_enter_chroot) {
    return remember_chdir(args->filename, -1, CD_CHROOT);
}

static __always_inline int emit_chdir(long ret) {
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    struct pending_t *pend = pending_chdir.lookup(&tid);
    if (!pend)
        return 0;
    if (ret < 0) {
        pending_chdir.delete(&tid);
        return 0;
    }
    u32 zero = 0;
    struct chdir_ev *e = scratch_chdir.lookup(&zero);
    if (!e) {
        pending_chdir.delete(&tid);
        return 0;
    }
    fill_hdr(&e->h, EV_CHDIR, tgid, tid, p->start_ns);
    e->kind = pend->kind;
    e->fd = pend->dfd;
    long n = 0;
    if (pend->ptr)
        n = bpf_probe_read_user_str(&e->path, sizeof(e->path), (const char *)pend->ptr);
    if (n <= 0)
        e->path[0] = 0;
    pending_chdir.delete(&tid);
    u64 size = offsetof(struct chdir_ev, path) + str_used(n, PATH_LEN);
    size = bounded(size, sizeof(struct chdir_ev));
    if (events.ringbuf_output(e, size, wake_flags(size, 0)) != 0)
        count_lost(LOST_RINGBUF);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_chdir) {
    return emit_chdir(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchdir) {
    return emit_chdir(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_chroot) {
    return emit_chdir(args->ret);
}

// -- renames (run mode only: they tell the name a written file ends under) ---------------------------

#if !NODE_MODE
static __always_inline int remember_rename(const char *old, s32 olddfd, const char *new, s32 newdfd, u32 flags) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    struct pending_rename_t pend = {};
    pend.old = (u64)old;
    pend.new = (u64)new;
    pend.olddfd = olddfd;
    pend.newdfd = newdfd;
    pend.flags = flags;
    pending_rename.update(&tid, &pend);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_rename) {
    return remember_rename(args->oldname, AT_FDCWD_VALUE, args->newname, AT_FDCWD_VALUE, 0);
}

TRACEPOINT_PROBE(syscalls, sys_enter_renameat) {
    return remember_rename(args->oldname, (s32)args->olddfd, args->newname, (s32)args->newdfd, 0);
}

TRACEPOINT_PROBE(syscalls, sys_enter_renameat2) {
    return remember_rename(
        args->oldname, (s32)args->olddfd, args->newname, (s32)args->newdfd, (u32)args->flags);
}

static __always_inline int emit_rename(long ret) {
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    struct pending_rename_t *pend = pending_rename.lookup(&tid);
    if (!pend)
        return 0;
    u32 zero = 0;
    struct rename_ev *e = ret == 0 ? scratch_rename.lookup(&zero) : NULL;
    if (!e) {
        pending_rename.delete(&tid);
        return 0;
    }
    fill_hdr(&e->h, EV_RENAME, tgid, tid, p->start_ns);
    e->olddfd = pend->olddfd;
    e->newdfd = pend->newdfd;
    e->flags = pend->flags;
    long n = bpf_probe_read_user_str(&e->paths[0], PATH_LEN, (const char *)pend->old);
    if (n <= 0)
        e->paths[0] = 0;
    u64 at = bounded(str_used(n, PATH_LEN), PATH_LEN);
    e->new_at = (u32)at;
    long m = bpf_probe_read_user_str(&e->paths[at], PATH_LEN, (const char *)pend->new);
    if (m <= 0)
        e->paths[at] = 0;
    pending_rename.delete(&tid);
    u64 size = offsetof(struct rename_ev, paths) + at + str_used(m, PATH_LEN);
    size = bounded(size, sizeof(struct rename_ev));
    if (events.ringbuf_output(e, size, wake_flags(size, 0)) != 0)
        count_lost(LOST_RINGBUF);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_rename) {
    return emit_rename(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_renameat) {
    return emit_rename(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_renameat2) {
    return emit_rename(args->ret);
}
#endif

// -- descriptor table operations ----------------------------------------------------------------------

static __always_inline int remember_fd(u32 op, s32 fd, s32 newfd, u32 arg, u32 last) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    struct pending_fd_t pend = {};
    pend.op = op;
    pend.fd = fd;
    pend.newfd = newfd;
    pend.arg = arg;
    pend.last = last;
    pending_fd.update(&tid, &pend);
    return 0;
}

// close frees the descriptor whatever it returns, except EBADF (nothing was open); dup-like calls
// report the new descriptor as their return value.
static __always_inline int emit_fd(long ret) {
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    struct pending_fd_t *pend = pending_fd.lookup(&tid);
    if (!pend)
        return 0;
    int ok = pend->op == FD_CLOSE ? ret != -EBADF_VALUE : ret >= 0;
    if (!ok) {
        pending_fd.delete(&tid);
        return 0;
    }
    struct fd_ev *e = events.ringbuf_reserve(sizeof(struct fd_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        pending_fd.delete(&tid);
        return 0;
    }
    fill_hdr(&e->h, EV_FD, tgid, tid, p->start_ns);
    e->op = pend->op;
    e->fd = pend->fd;
    e->newfd = pend->op == FD_DUP ? (s32)ret : pend->newfd;
    e->arg = pend->arg;
    e->last = pend->last;
    pending_fd.delete(&tid);
    events.ringbuf_submit(e, wake_flags(sizeof(*e), 0));
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_close) {
    return remember_fd(FD_CLOSE, (s32)args->fd, -1, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_close) {
    return emit_fd(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_dup) {
    return remember_fd(FD_DUP, (s32)args->fildes, -1, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_dup) {
    return emit_fd(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_dup2) {
    return remember_fd(FD_DUP, (s32)args->oldfd, (s32)args->newfd, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_dup2) {
    return emit_fd(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_dup3) {
    return remember_fd(FD_DUP, (s32)args->oldfd, (s32)args->newfd, (args->flags & O_CLOEXEC_FLAG) ? 1 : 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_dup3) {
    return emit_fd(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_fcntl) {
    u32 cmd = (u32)args->cmd;
    if (cmd == 0)  // F_DUPFD
        return remember_fd(FD_DUP, (s32)args->fd, -1, 0, 0);
    if (cmd == 1030)  // F_DUPFD_CLOEXEC
        return remember_fd(FD_DUP, (s32)args->fd, -1, 1, 0);
    if (cmd == 2)  // F_SETFD
        return remember_fd(FD_SETFD, (s32)args->fd, -1, (u32)(args->arg & 1), 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_fcntl) {
    return emit_fd(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_ioctl) {
    u32 cmd = (u32)args->cmd;
    if (cmd == 0x5451)  // FIOCLEX
        return remember_fd(FD_SETFD, (s32)args->fd, -1, 1, 0);
    if (cmd == 0x5450)  // FIONCLEX
        return remember_fd(FD_SETFD, (s32)args->fd, -1, 0, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_ioctl) {
    return emit_fd(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_close_range) {
    return remember_fd(FD_CLOSE_RANGE, (s32)args->fd, -1, (u32)args->flags, (u32)args->max_fd);
}

TRACEPOINT_PROBE(syscalls, sys_exit_close_range) {
    return emit_fd(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_unshare) {
    return remember_fd(FD_UNSHARE, -1, -1, (u32)args->unshare_flags, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_unshare) {
    return emit_fd(args->ret);
}

// -- io_uring: its file operations never pass the syscall tracepoints, so say once that it is used ----

static __always_inline int emit_uring(s32 fd) {
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    u8 one = 1;
    if (uring_seen.insert(&tgid, &one) != 0)
        return 0;  // told already
    struct uring_ev *e = events.ringbuf_reserve(sizeof(struct uring_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        return 0;
    }
    fill_hdr(&e->h, EV_URING, tgid, tid, p->start_ns);
    e->fd = fd;
    events.ringbuf_submit(e, wake_flags(sizeof(*e), 0));
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_io_uring_setup) {
    if (args->ret < 0)
        return 0;
    return emit_uring((s32)args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_io_uring_enter) {
    return emit_uring((s32)args->fd);
}

// -- credentials: the calls that change uids or capabilities (user space applies their rules) --------

static __always_inline int remember_cred(u32 op, u32 a, u32 b, u32 c, u64 cap_eff) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    struct pending_cred_t pend = {};
    pend.op = op;
    pend.a = a;
    pend.b = b;
    pend.c = c;
    pend.cap_eff = cap_eff;
    pending_cred.update(&tid, &pend);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_setuid) {
    return remember_cred(CR_SETUID, (u32)args->uid, 0, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_enter_setreuid) {
    return remember_cred(CR_SETREUID, (u32)args->ruid, (u32)args->euid, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_enter_setresuid) {
    return remember_cred(CR_SETRESUID, (u32)args->ruid, (u32)args->euid, (u32)args->suid, 0);
}

TRACEPOINT_PROBE(syscalls, sys_enter_setfsuid) {
    return remember_cred(CR_SETFSUID, (u32)args->uid, 0, 0, 0);
}

// capset's data: struct __user_cap_data_struct[2] {effective, permitted, inheritable} (version 3)
TRACEPOINT_PROBE(syscalls, sys_enter_capset) {
    u32 data[6] = {};
    bpf_probe_read_user(&data, sizeof(data), (void *)args->data);
    u64 eff = ((u64)data[3] << 32) | data[0];
    return remember_cred(CR_CAPSET, 0, 0, 0, eff);
}

static __always_inline int emit_cred(long ret) {
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    struct pending_cred_t *pend = pending_cred.lookup(&tid);
    if (!pend)
        return 0;
    if (ret < 0) {
        pending_cred.delete(&tid);
        return 0;
    }
    struct cred_ev *e = events.ringbuf_reserve(sizeof(struct cred_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        pending_cred.delete(&tid);
        return 0;
    }
    fill_hdr(&e->h, EV_CRED, tgid, tid, p->start_ns);
    e->op = pend->op;
    e->ret = (s32)ret;
    e->a = pend->a;
    e->b = pend->b;
    e->c = pend->c;
    e->cap_eff = pend->cap_eff;
    pending_cred.delete(&tid);
    events.ringbuf_submit(e, wake_flags(sizeof(*e), 0));
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_setuid) {
    return emit_cred(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_setreuid) {
    return emit_cred(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_setresuid) {
    return emit_cred(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_setfsuid) {
    return emit_cred(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_capset) {
    return emit_cred(args->ret);
}

// -- exit ---------------------------------------------------------------------------------------------

// The exit status: exit_group's code, or the fatal signal (as -signal). exit_group is authoritative;
// a signal only counts when nothing was recorded before, so the SIGKILLs a group exit sends to the
// other threads do not overwrite the real code. A plain exit() counts only from the group leader
// (other threads ending with exit(0) say nothing about the process).
TRACEPOINT_PROBE(syscalls, sys_enter_exit_group) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    s32 code = (s32)(args->error_code & 0xff);
    exit_codes.update(&tgid, &code);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_exit) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid) || tid != tgid)
        return 0;
    s32 code = (s32)(args->error_code & 0xff);
    exit_codes.insert(&tgid, &code);
    return 0;
}

static __always_inline int fatal_by_default(int sig) {
    // every signal whose default action is to end the process
    return sig > 0 && sig < 32 && !(sig == 17 || sig == 18 || sig == 19 || sig == 20 || sig == 21 ||
                                    sig == 22 || sig == 23 || sig == 28);
}

// A fatal signal with the default action is turned by the kernel into SIGKILL for the whole group
// before delivery, so signal_deliver only shows SIGKILL: remember which signal was really sent.
TRACEPOINT_PROBE(signal, signal_generate) {
    if (args->result != 0 || !fatal_by_default(args->sig))
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 target = args->pid;
    if (target == (u32)id)  // sent to the current thread (e.g. SIGPIPE): its process is ours
        target = id >> 32;
    if (!tracked.lookup(&target))
        return 0;
    s32 sig = args->sig;
    fatal_sent.update(&target, &sig);
    return 0;
}

TRACEPOINT_PROBE(signal, signal_deliver) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    int sig = args->sig;
    if (args->sa_handler != 0) {  // a handler (or SIG_IGN) runs: not fatal
        fatal_sent.delete(&tgid);
        return 0;
    }
    if (!fatal_by_default(sig))
        return 0;
    s32 code = -sig;
    if (sig == 9) {
        s32 *sent = fatal_sent.lookup(&tgid);
        if (sent)
            code = -*sent;
    }
    exit_codes.insert(&tgid, &code);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit) {
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    pending_open.delete(&tid);
    pending_chdir.delete(&tid);
    pending_fd.delete(&tid);
    pending_cred.delete(&tid);
    new_tasks.delete(&tid);
    if (!args->group_dead)
        return 0;
    u64 start_ns = p->start_ns;
    struct exit_ev *e = events.ringbuf_reserve(sizeof(struct exit_ev));
    if (e) {
        fill_hdr(&e->h, EV_EXIT, tgid, tid, start_ns);
        s32 *code = exit_codes.lookup(&tgid);
        e->has_code = code != NULL;
        e->code = code ? *code : 0;
        bpf_get_current_comm(&e->comm, sizeof(e->comm));
        events.ringbuf_submit(e, wake_flags(sizeof(*e), 0));
    } else {
        count_lost(LOST_RINGBUF);
    }
    exit_codes.delete(&tgid);
    fatal_sent.delete(&tgid);
    uring_seen.delete(&tgid);
    tracked.delete(&tgid);
    return 0;
}

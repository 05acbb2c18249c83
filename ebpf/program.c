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
// Expected defines: MAX_ARGS, ARG_LEN, PATH_LEN, RINGBUF_PAGES, MAX_PROCS, WAKEUP_EVENTS.

#define EV_FORK 1
#define EV_EXEC 2
#define EV_EXEC_ARGS 3
#define EV_EXEC_FAIL 4
#define EV_OPEN 5
#define EV_EXIT 6
#define EV_CHDIR 7

#define LOST_RINGBUF 0
#define LOST_PROCS 1

#define CLONE_THREAD_FLAG 0x00010000
#define AT_FDCWD_VALUE -100

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
    u32 _pad;
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
    u32 truncated;
    char filename[PATH_LEN];
    char argv[MAX_ARGS][ARG_LEN];
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
    u32 _pad;
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
    s32 ret;
    s32 fd;
    char path[PATH_LEN];
};

struct pending_t {
    u64 ptr;
    s32 dfd;
    u32 flags;
};

BPF_HASH(tracked, u32, struct proc_t, MAX_PROCS);
BPF_HASH(new_threads, u32, u8, MAX_PROCS);
BPF_HASH(exit_codes, u32, s32, MAX_PROCS);
BPF_HASH(fatal_sent, u32, s32, MAX_PROCS);
BPF_HASH(pending_open, u32, struct pending_t, MAX_PROCS);
BPF_HASH(pending_chdir, u32, struct pending_t, MAX_PROCS);
BPF_PERCPU_ARRAY(lost, u64, 2);
BPF_PERCPU_ARRAY(since_wakeup, u64, 1);
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);

static __always_inline void count_lost(int which) {
    u32 key = which;
    u64 *v = lost.lookup(&key);
    if (v)
        (*v)++;
}

// Waking the reader for every event costs a context switch per event; instead the reader polls on a
// short timeout and each CPU wakes it only every WAKEUP_EVENTS events (so a burst never fills the buffer).
static __always_inline u64 wake_flags(void) {
    u32 key = 0;
    u64 *n = since_wakeup.lookup(&key);
    if (!n)
        return 0;
    if (++(*n) < WAKEUP_EVENTS)
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

// A new task of a tracked process: remember threads, so that fork below adds only processes.
TRACEPOINT_PROBE(task, task_newtask) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    if (args->clone_flags & CLONE_THREAD_FLAG) {
        u32 child = args->pid;
        u8 one = 1;
        new_threads.update(&child, &one);
    }
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork) {
    u32 tgid, tid;
    struct proc_t *parent = current_proc(&tgid, &tid);
    if (!parent)
        return 0;
    u32 child = args->child_pid;
    if (new_threads.lookup(&child)) {
        new_threads.delete(&child);
        return 0;
    }
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
    e->child_start_ns = p.start_ns;
    events.ringbuf_submit(e, wake_flags());
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec) {
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    exit_codes.delete(&tgid);  // de_thread's SIGKILLs to the old threads are not this process's end
    fatal_sent.delete(&tgid);
    struct exec_ev *e = events.ringbuf_reserve(sizeof(struct exec_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        return 0;
    }
    fill_hdr(&e->h, EV_EXEC, tgid, tid, p->start_ns);
    e->old_pid = args->old_pid;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    unsigned short loc = args->data_loc_filename & 0xFFFF;
    bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename), (void *)args + loc);
    events.ringbuf_submit(e, wake_flags());
    return 0;
}

static __always_inline int emit_exec_args(const char *filename, const char *const *argv) {
    u32 tgid, tid;
    struct proc_t *p = current_proc(&tgid, &tid);
    if (!p)
        return 0;
    struct exec_args_ev *e = events.ringbuf_reserve(sizeof(struct exec_args_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        return 0;
    }
    fill_hdr(&e->h, EV_EXEC_ARGS, tgid, tid, p->start_ns);
    e->argc = 0;
    e->truncated = 0;
    bpf_probe_read_user_str(&e->filename, sizeof(e->filename), filename);
#pragma unroll
    for (int i = 0; i < MAX_ARGS; i++) {
        const char *arg = NULL;
        bpf_probe_read_user(&arg, sizeof(arg), &argv[i]);
        if (!arg)
            goto done;
        bpf_probe_read_user_str(&e->argv[i], ARG_LEN, arg);
        e->argc = i + 1;
    }
    {
        const char *more = NULL;
        bpf_probe_read_user(&more, sizeof(more), &argv[MAX_ARGS]);
        e->truncated = more != NULL;
    }
done:
    events.ringbuf_submit(e, wake_flags());
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    return emit_exec_args(args->filename, args->argv);
}

TRACEPOINT_PROBE(syscalls, sys_enter_execveat) {
    return emit_exec_args(args->filename, args->argv);
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
    events.ringbuf_submit(e, wake_flags());
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve) {
    return emit_exec_fail(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat) {
    return emit_exec_fail(args->ret);
}

static __always_inline int remember_open(const char *filename, s32 dfd, u32 flags) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    struct pending_t pend = {};
    pend.ptr = (u64)filename;
    pend.dfd = dfd;
    pend.flags = flags;
    pending_open.update(&tid, &pend);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    return remember_open(args->filename, (s32)args->dfd, (u32)args->flags);
}

TRACEPOINT_PROBE(syscalls, sys_enter_open) {
    return remember_open(args->filename, AT_FDCWD_VALUE, (u32)args->flags);
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat2) {
    u64 flags = 0;
    bpf_probe_read_user(&flags, sizeof(flags), (void *)args->how);  // struct open_how starts with flags
    return remember_open(args->filename, (s32)args->dfd, (u32)flags);
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
    struct open_ev *e = events.ringbuf_reserve(sizeof(struct open_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        pending_open.delete(&tid);
        return 0;
    }
    fill_hdr(&e->h, EV_OPEN, tgid, tid, p->start_ns);
    e->fd = (s32)ret;
    e->dfd = pend->dfd;
    e->flags = pend->flags;
    bpf_probe_read_user_str(&e->path, sizeof(e->path), (const char *)pend->ptr);
    pending_open.delete(&tid);
    events.ringbuf_submit(e, wake_flags());
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat) {
    return emit_open(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_open) {
    return emit_open(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat2) {
    return emit_open(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_chdir) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    struct pending_t pend = {};
    pend.ptr = (u64)args->filename;
    pend.dfd = -1;
    pending_chdir.update(&tid, &pend);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_fchdir) {
    u32 tgid, tid;
    if (!current_proc(&tgid, &tid))
        return 0;
    struct pending_t pend = {};
    pend.dfd = (s32)args->fd;
    pending_chdir.update(&tid, &pend);
    return 0;
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
    struct chdir_ev *e = events.ringbuf_reserve(sizeof(struct chdir_ev));
    if (!e) {
        count_lost(LOST_RINGBUF);
        pending_chdir.delete(&tid);
        return 0;
    }
    fill_hdr(&e->h, EV_CHDIR, tgid, tid, p->start_ns);
    e->ret = (s32)ret;
    e->fd = pend->dfd;
    e->path[0] = 0;
    if (pend->ptr)
        bpf_probe_read_user_str(&e->path, sizeof(e->path), (const char *)pend->ptr);
    pending_chdir.delete(&tid);
    events.ringbuf_submit(e, wake_flags());
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_chdir) {
    return emit_chdir(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchdir) {
    return emit_chdir(args->ret);
}

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
    new_threads.delete(&tid);
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
        events.ringbuf_submit(e, wake_flags());
    } else {
        count_lost(LOST_RINGBUF);
    }
    exit_codes.delete(&tgid);
    fatal_sent.delete(&tgid);
    tracked.delete(&tgid);
    return 0;
}

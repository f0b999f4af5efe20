// Running a built executable as a child process and measuring how it ended: exit status or
// signal, its output, and its peak resident memory, with a wall-clock limit. Foundation's
// Process reaps children itself and cannot report the peak memory, so this spawns with
// posix_spawn and waits with wait4.
//
// Peak memory: the kernel's ru_maxrss is no good here. Linux records the high-water mark of
// the memory a process leaves at exec into that process's ru_maxrss, and posix_spawn's child
// leaves the parent's (vfork shares it), so every child would report at least the test
// process's own peak (hundreds of MiB once a real model is loaded). The child's own peak is
// its current address space's high-water mark, VmHWM in /proc/PID/status, polled while it
// runs (monotonic, so the last reading is its peak to within the polling interval).
import Foundation
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a child process ended and what it printed.
public struct ChildResult: Sendable, CustomStringConvertible {
    /// The exit status, when it exited (nil when a signal ended it).
    public var status: Int32?
    /// The signal that ended it (nil when it exited).
    public var signal: Int32?
    /// Whether it was killed for passing the time limit.
    public var timedOut: Bool
    /// Standard output, decoded as UTF-8 (invalid bytes replaced).
    public var stdout: String
    /// Standard error, decoded the same way.
    public var stderr: String
    /// Peak resident set size of the child's own address space, in KiB (VmHWM polled from
    /// /proc every 2 ms while it ran; 0 for a child that exited before the first reading).
    public var peakRSSKiB: Int

    /// A result from its parts (the harness's own checks are tested on made-up results).
    public init(status: Int32?, signal: Int32?, timedOut: Bool, stdout: String, stderr: String, peakRSSKiB: Int) {
        (self.status, self.signal, self.timedOut, self.stdout, self.stderr, self.peakRSSKiB) = (status, signal, timedOut, stdout, stderr, peakRSSKiB)
    }

    /// How it ended, its peak memory and the start of its stderr, on one line.
    public var description: String {
        let end = status.map { "exit \($0)" } ?? "signal \(signal ?? -1)"
        return "\(end)\(timedOut ? " (timed out)" : ""), peak RSS \(peakRSSKiB / 1024) MiB, stderr: \(stderr.prefix(400))"
    }
}

/// Runs `executable` with `arguments`, standard input from `stdin` (nil: /dev/null), and
/// waits for it at most `timeout` seconds (then kills it with SIGKILL and reports
/// `timedOut`). `environment` entries are added to the current environment.
/// `workingDirectory` (nil: this process's) is the child's current directory, so a child
/// handed generated relative paths (`--out 3`) writes under it, not into the package.
/// Throws when the process cannot be started.
public func runChild(
    _ executable: String, _ arguments: [String], stdin: Data? = nil, timeout: Double = 120,
    environment: [String: String] = [:], workingDirectory: String? = nil
) throws -> ChildResult {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attend-child-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let inPath = dir.appendingPathComponent("stdin").path
    let outPath = dir.appendingPathComponent("stdout").path
    let errPath = dir.appendingPathComponent("stderr").path
    _ = FileManager.default.createFile(atPath: inPath, contents: stdin ?? Data())

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, stdin == nil ? "/dev/null" : inPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    if let workingDirectory {
        guard let addChdir = spawnAddChdir else {
            throw NSError(domain: "runChild", code: Int(ENOSYS), userInfo: [NSLocalizedDescriptionKey: "this C library cannot set a spawned child's directory"])
        }
        let rc = addChdir(&actions, workingDirectory)
        guard rc == 0 else {
            throw NSError(domain: "runChild", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "cannot run in \(workingDirectory): \(String(cString: strerror(rc)))"])
        }
    }

    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard rc == 0 else {
        throw NSError(
            domain: "runChild", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "cannot start \(executable): \(String(cString: strerror(rc)))"])
    }

    var status: Int32 = 0
    var usage = rusage()
    var timedOut = false
    var peakKiB = 0
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        // Before reaping: /proc/PID exists until wait4 collects the child.
        if let hwm = highWaterMarkKiB(pid) { peakKiB = max(peakKiB, hwm) }
        let r = wait4(pid, &status, WNOHANG, &usage)
        if r == pid { break }
        if r < 0 && errno != EINTR {
            throw NSError(domain: "runChild", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "wait4 failed"])
        }
        if !timedOut && Date() > deadline {
            kill(pid, SIGKILL)
            timedOut = true
        }
        usleep(2_000)
    }
    let read = { (path: String) in String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self) }
    // WIFEXITED / WEXITSTATUS / WTERMSIG are macros; spelled out here.
    let signal = status & 0x7F
    return ChildResult(
        status: signal == 0 ? (status >> 8) & 0xFF : nil, signal: signal == 0 ? nil : signal,
        timedOut: timedOut, stdout: read(outPath), stderr: read(errPath), peakRSSKiB: peakKiB)
}

/// posix_spawn_file_actions_addchdir_np (glibc 2.29+, macOS 10.15+), looked up at run time:
/// glibc declares it only under _GNU_SOURCE, which Swift's Glibc module does not set.
private typealias SpawnAddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
private let spawnAddChdir: SpawnAddChdir? = {
    #if canImport(Glibc)
        let defaultHandle: UnsafeMutableRawPointer? = nil  // RTLD_DEFAULT
    #else
        let defaultHandle = UnsafeMutableRawPointer(bitPattern: -2)  // RTLD_DEFAULT
    #endif
    guard let symbol = dlsym(defaultHandle, "posix_spawn_file_actions_addchdir_np") else { return nil }
    return unsafeBitCast(symbol, to: SpawnAddChdir.self)
}()

/// VmHWM of process `pid` in KiB from /proc/PID/status, or nil when it cannot be read (the
/// process is gone, or it is a zombie whose address space is released).
private func highWaterMarkKiB(_ pid: pid_t) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
    }
    return nil
}

/// The path of an executable product (`attend`, `bench`) that `swift build` puts beside the
/// test bundle `bundle`.
public func builtProduct(_ name: String, besides bundle: Bundle) -> String {
    bundle.bundleURL.deletingLastPathComponent().appendingPathComponent(name).path
}

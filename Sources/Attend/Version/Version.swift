/// The version of Attend: the library, and the `attend`, `bench` and `kernel-fuzz` tools,
/// which print it for `--version`.
///
/// It is the latest version heading of CHANGELOG.md (`## X.Y.Z`); until the first release is
/// tagged it is the coming one with a `-dev` suffix. A constant; reading it costs nothing.
public let attendVersion = "0.1.0-dev"

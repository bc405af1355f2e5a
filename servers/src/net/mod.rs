//! Sockets shared by every model: listeners and the one write path.

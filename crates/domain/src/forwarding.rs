//! A host's forwarding table, computed from the domain states the controller streams.

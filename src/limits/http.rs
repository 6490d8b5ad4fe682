//! HTTP for the limits: the `429` answer, and the gate in front of the API port.

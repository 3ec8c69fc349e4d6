//! FastCGI 1.0 (placeholder: being written).

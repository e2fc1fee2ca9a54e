"""The dialects' request and response shapes, their converters, and the stream encoders."""

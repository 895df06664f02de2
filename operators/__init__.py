"""Pure stream logic: plain values in, plain values out.

Nothing here does I/O or reads a clock; time is passed in.  Every operator is
testable without Redis or the Bytewax runtime.
"""

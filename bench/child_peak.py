"""The peak memory of a benchmark's child process, as a Python expression for its code.

ru_maxrss is not it on Linux: at exec a process keeps the high-water mark of the process it
was forked from, so a child started by a bench that holds a large synthetic field reports
at least the bench's own size (a 1 GB parent: 1049 MB for a child that used 10 MB). VmHWM
in /proc/self/status belongs to the new program's memory alone.
"""

PEAK_RSS = ("int(next(line for line in open('/proc/self/status') "
            "if line.startswith('VmHWM')).split()[1]) * 1024")

#!/bin/sh
# Claims completion without doing anything.
cat > /dev/null
echo "<promise>COMPLETE</promise>"

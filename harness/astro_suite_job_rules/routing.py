"""Which destination a job of the harness's Galaxy goes to.

The suite's tools go to the Pulsar destination when the job's user is the Pulsar test user
(or for every user, pulsar_user "*"); everything else (uploads, Galaxy's own tools, the
suite's tools for the other users) runs on the local runner. Galaxy passes tool_id and
user_email, and the environment's own parameters pulsar_user and suite_tools.
"""


def astro_suite_route(tool_id, user_email, pulsar_user, suite_tools):
    return "pulsar" if sends_to_pulsar(tool_id, user_email, pulsar_user, suite_tools) else "local"


def sends_to_pulsar(tool_id, user_email, pulsar_user, suite_tools):
    if tool_id not in suite_tools.split(","):
        return False
    return pulsar_user == "*" or user_email == pulsar_user

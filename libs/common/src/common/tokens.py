"""Signed tokens: per-job read tokens, session tokens and expiring download links.

One signing key (`SIGNING_KEY`) shared by the gateway and the notifier; each
kind of token uses its own salt so one can never be replayed as another.
"""

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from common.settings import CommonSettings


class InvalidToken(Exception):
    pass


class Signer:
    def __init__(self, settings: CommonSettings) -> None:
        key = settings.signing_key.get_secret_value()
        self._jobs = URLSafeTimedSerializer(key, salt="job-read")
        self._files = URLSafeTimedSerializer(key, salt="file-download")
        self._sessions = URLSafeTimedSerializer(key, salt="session")
        self.job_token_ttl = settings.job_token_ttl_seconds
        self.download_ttl = settings.download_url_ttl_seconds

    def job_token(self, job_id: str, version: int = 0) -> str:
        """A token that grants read access to one job while the job's `token_version` is
        `version`: the owner revokes every token of a job by raising it."""
        return self._jobs.dumps({"job": job_id, "v": version} if version else {"job": job_id})

    def job_grant(self, token: str, *, max_age: int | None = None) -> tuple[str, int]:
        """(job id, token version) a token grants; InvalidToken when forged or older than
        `max_age` (default: JOB_TOKEN_TTL_SECONDS)."""
        try:
            data = self._jobs.loads(token, max_age=max_age or self.job_token_ttl)
        except SignatureExpired as e:
            raise InvalidToken("the token has expired") from e
        except BadSignature as e:
            raise InvalidToken("the token is not valid") from e
        return str(data["job"]), int(data.get("v", 0))

    def job_from_token(self, token: str) -> str:
        """The job id a token grants; raises InvalidToken when forged or expired."""
        return self.job_grant(token)[0]

    def file_signature(self, key: str) -> str:
        return self._files.dumps(key)

    def key_from_file_signature(self, signature: str) -> str:
        try:
            return str(self._files.loads(signature, max_age=self.download_ttl))
        except SignatureExpired as e:
            raise InvalidToken("the download link has expired") from e
        except BadSignature as e:
            raise InvalidToken("the download link is not valid") from e

    def session_token(self, session_id: str, email: str, expires_at: float) -> str:
        """A signed-in user's token. It carries its own expiry (Unix time) so every
        service can check it; revocation is the session's record in the database."""
        return self._sessions.dumps({"sid": session_id, "email": email, "exp": int(expires_at)})

    def session_from_token(self, token: str, *, now: float) -> tuple[str, str]:
        """(session id, email) of a session token; InvalidToken when forged or expired."""
        try:
            data = self._sessions.loads(token)
        except BadSignature as e:
            raise InvalidToken("the session token is not valid") from e
        if not isinstance(data, dict) or not {"sid", "email", "exp"} <= set(data):
            raise InvalidToken("the session token is not valid")
        if data["exp"] <= now:
            raise InvalidToken("the session has expired; sign in again")
        return str(data["sid"]), str(data["email"])

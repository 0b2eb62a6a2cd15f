#Requires -Version 5.1
<#
.SYNOPSIS
    Prepares a Windows 10/11 x64 test VM for the TestDriver fast-mutex deadlock demo.

.DESCRIPTION
    Does, in this order, only what is not done yet:

      1. Checks that PowerShell runs elevated and that Windows is 64-bit.
      2. Turns test signing on with "bcdedit /set testsigning on", so that the
         test-signed TestDriver.sys built by "cargo make" can load. Secure Boot
         must be off for this: with Secure Boot on, bcdedit refuses to change the
         value. The script checks Secure Boot first (Confirm-SecureBootUEFI) and
         stops with a message if it is on.
      3. Creates C:\Temp and C:\Temp2: FileCreationThread would write
         C:\Temp\file_N.txt and FileMoveThread would move them to C:\Temp2.
      4. Optionally (-EnableDriverVerifier) turns on Driver Verifier's deadlock
         detection for TestDriver.sys only ("verifier /flags 0x20 /driver TestDriver.sys";
         0x20 is bit 5, "deadlock detection"). With it, the recursive
         ExAcquireFastMutex no longer hangs silently: Driver Verifier stops the
         machine with bug check 0xC4 (DRIVER_VERIFIER_DETECTED_VIOLATION) and the
         crash dump shows the second acquire. Turn it off again with
         "verifier /reset" (or scripts\Remove-TestDriver.ps1 -ResetVerifier) and a reboot.
      5. Tells you to reboot (or reboots with -Restart). Test signing and Driver
         Verifier settings only take effect after a reboot.

    Run it in the VM, never on a machine you care about: test signing lowers the
    machine's protection, and the driver deadlocks two kernel threads for good.

    Assumptions (not verified here, no Windows was available when this was written):
      - "bcdedit /enum {current}" prints a line "testsigning  Yes" when it is on
        (English output; other display languages may print another word).
      - verifier.exe exits with 0 or 2 when it accepted new settings (2 is read as
        "accepted, reboot required"); any other code is reported as a failure.

.PARAMETER TestFolder
    Folders to create. Default: C:\Temp and C:\Temp2, the paths hard-coded in the driver.

.PARAMETER EnableDriverVerifier
    Also enable Driver Verifier deadlock detection (flag 0x20) for TestDriver.sys.

.PARAMETER DriverImageName
    Image name given to Driver Verifier. Default: TestDriver.sys.

.PARAMETER Restart
    Restart the computer at the end if a setting changed that needs a reboot.

.EXAMPLE
    PS C:\> .\scripts\Initialize-TestVM.ps1 -WhatIf
    Shows what would change, changes nothing.

.EXAMPLE
    PS C:\> .\scripts\Initialize-TestVM.ps1 -Restart
    Turns test signing on, creates C:\Temp and C:\Temp2, reboots.

.EXAMPLE
    PS C:\> .\scripts\Initialize-TestVM.ps1 -EnableDriverVerifier
    Same, plus Driver Verifier deadlock detection for TestDriver.sys (reboot yourself).

.NOTES
    Undo everything with scripts\Remove-TestDriver.ps1 -DisableTestSigning -ResetVerifier.
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string[]]$TestFolder = @('C:\Temp', 'C:\Temp2'),

    [switch]$EnableDriverVerifier,

    [string]$DriverImageName = 'TestDriver.sys',

    [switch]$Restart
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

function Test-SecureBootOn {
    try {
        return [bool](Confirm-SecureBootUEFI)
    }
    catch {
        # BIOS firmware, or the cmdlet is not supported: Secure Boot cannot be on.
        return $false
    }
}

function Get-TestSigningState {
    $configured = $false
    $result = Invoke-NativeCommand -FilePath 'bcdedit.exe' -ArgumentList @('/enum', '{current}')
    if ($result.ExitCode -ne 0) {
        throw "bcdedit /enum {current} failed with exit code $($result.ExitCode): $($result.Output -join ' ')"
    }
    foreach ($line in $result.Output) {
        if ($line -match '^\s*testsigning\s+(\S+)') {
            $configured = ($Matches[1] -eq 'Yes')
        }
    }
    $startOptions = (Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Control' -Name SystemStartOptions).SystemStartOptions
    [pscustomobject]@{
        Configured = $configured
        Active     = ($startOptions -match 'TESTSIGNING')
    }
}

Assert-Administrator

if (-not [Environment]::Is64BitOperatingSystem) {
    throw 'TestDriver.sys is an x64 driver: this Windows is 32-bit.'
}
$os = Get-CimInstance -ClassName Win32_OperatingSystem
Write-Host "Windows: $($os.Caption) build $($os.BuildNumber)"

$rebootNeeded = $false

# 1. Test signing
$signing = Get-TestSigningState
if ($signing.Configured) {
    Write-Host 'Test signing: already on in the boot configuration.'
    if (-not $signing.Active) {
        Write-Warning 'Test signing is configured but not active yet: reboot before installing the driver.'
        $rebootNeeded = $true
    }
}
else {
    if (Test-SecureBootOn) {
        throw ('Secure Boot is on, and bcdedit cannot turn test signing on while it is. ' +
            'Turn Secure Boot off in the VM settings (Hyper-V: Settings > Security > clear "Enable Secure Boot"), ' +
            'start the VM again and rerun this script.')
    }
    if ($PSCmdlet.ShouldProcess('boot configuration {current}', 'bcdedit /set testsigning on')) {
        $result = Invoke-NativeCommand -FilePath 'bcdedit.exe' -ArgumentList @('/set', 'testsigning', 'on')
        $result.Output | ForEach-Object { Write-Host "  $_" }
        if ($result.ExitCode -ne 0) {
            throw "bcdedit /set testsigning on failed with exit code $($result.ExitCode)."
        }
        Write-Host 'Test signing: turned on. It takes effect after a reboot ("Test Mode" shows on the desktop).'
        $rebootNeeded = $true
    }
}

# 2. Folders used by the driver's threads
foreach ($folder in $TestFolder) {
    if (Test-Path -LiteralPath $folder -PathType Container) {
        $count = @(Get-ChildItem -LiteralPath $folder -Force).Count
        Write-Host "Folder ${folder}: exists ($count item(s))."
        if ($count -gt 0) {
            Write-Warning "$folder is not empty. The demo's check is that C:\Temp stays empty: empty it first."
        }
    }
    elseif ($PSCmdlet.ShouldProcess($folder, 'Create folder')) {
        New-Item -ItemType Directory -Path $folder | Out-Null
        Write-Host "Folder ${folder}: created."
    }
}

# 3. Optional Driver Verifier deadlock detection
if ($EnableDriverVerifier) {
    if ($PSCmdlet.ShouldProcess($DriverImageName, 'verifier /flags 0x20 /driver (deadlock detection)')) {
        $result = Invoke-NativeCommand -FilePath 'verifier.exe' -ArgumentList @('/flags', '0x20', '/driver', $DriverImageName)
        $result.Output | ForEach-Object { Write-Host "  $_" }
        if (@(0, 2) -notcontains $result.ExitCode) {
            throw "verifier /flags 0x20 /driver $DriverImageName failed with exit code $($result.ExitCode)."
        }
        $rebootNeeded = $true
        $query = Invoke-NativeCommand -FilePath 'verifier.exe' -ArgumentList @('/querysettings')
        $query.Output | ForEach-Object { Write-Host "  $_" }
        if ($query.ExitCode -ne 0) {
            Write-Warning "verifier /querysettings exited with code $($query.ExitCode): check the settings by hand."
        }
        Write-Host ('Driver Verifier: deadlock detection set for ' + $DriverImageName +
            ' after the next reboot. Expect bug check 0xC4 instead of a silent hang when the driver starts. ' +
            'Turn it off with "verifier /reset" and a reboot.')
    }
}

if ($rebootNeeded) {
    Restart-ComputerIfRequested -Cmdlet $PSCmdlet -Restart:$Restart -Message @('',
        'REBOOT NEEDED: run Restart-Computer, then continue with scripts\Install-TestDriver.ps1.')
}
else {
    Write-Host ''
    Write-Host 'Ready: continue with scripts\Install-TestDriver.ps1.'
}
